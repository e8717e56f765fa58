"""What ``failover demo`` scripts into the simulator, and the words that describe it.

One :class:`Scenario` drives both: :func:`script` sets the simulator up from it and
:func:`describe` prints it before the run, so the description cannot drift from what
was scripted. A test passes a scenario of its own (e.g. every provider down, to force
failures). The scenario also holds the client's own limit, a spend budget on the chain's
first (dearest) model: :func:`budgets` gives it to the manager.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from failover.budgets import Budget
    from failover.testing import Simulator

__all__ = [
    "CHAIN",
    "KEYS",
    "KIND_WORDS",
    "Outage",
    "Scenario",
    "accepted_keys",
    "budgets",
    "describe",
    "kind_words",
    "script",
]

CHAIN = ("openai/gpt-4o", "anthropic/claude-haiku-4-5", "gemini/gemini-2.5-flash-lite")
"""The models every request tries, in order: the dearest first, each next one cheaper."""
KEYS = {
    "openai-main": ("openai", "sk-demo-openai-main-0000000001"),
    "openai-spare": ("openai", "sk-demo-openai-spare-000000002"),
    "openai-backup": ("openai", "sk-demo-openai-backup-00000006"),
    "openai-revoked": ("openai", "sk-demo-openai-revoked-0000003"),
    "anthropic": ("anthropic", "sk-ant-demo-anthropic-00000004"),
    "gemini": ("gemini", "AIzaSy-demo-gemini-000000000005"),
}
"""Profile name -> (provider, key). The keys are made up and never printed."""

KIND_WORDS = {
    "rate_limit": "rate limited (429)",
    "quota": "out of quota (429)",
    "invalid_key": "key refused (401)",
    "overloaded": "overloaded (503, Anthropic 529)",
    "server_error": "server error (500)",
    "hang": "no answer until the timeout",
    "reset": "connection reset",
    "truncate": "reply cut short",
    "midstream_error": "stream broken midway",
    "malformed": "malformed reply",
    "context_limit": "prompt too long",
    "content_block": "content blocked",
}
"""A simulator behaviour in plain words, with the HTTP status a client sees."""


def kind_words(kind: str, provider: str | None = None) -> str:
    """A simulator behaviour in plain words, with the status ``provider`` answers it with."""
    if kind == "overloaded" and provider is not None:
        return "overloaded (529)" if provider == "anthropic" else "overloaded (503)"
    return KIND_WORDS.get(kind, kind)


@dataclass(frozen=True, slots=True)
class Outage:
    """A provider failing every call between two moments of the run.

    Attributes:
        provider: The provider that fails.
        start: When it starts, as a fraction of the run's seconds (0.3: 30% in).
        end: When it ends, the same way.
        kind: How its calls fail (a simulator behaviour).
    """

    provider: str
    start: float
    end: float
    kind: str = "overloaded"


@dataclass(frozen=True, slots=True)
class Scenario:
    """Everything the demo scripts: keys, their troubles, outages, chaos, the client's limits.

    Attributes:
        dead_key: A key the provider has revoked: its first use gets a 401.
        budget_key: A key with a small rate limit (requests, not dollars).
        budget: Requests ``budget_key`` may send per ``window`` seconds before a 429.
        window: The budget's window, in seconds.
        retry_after: The wait its 429 asks for, in seconds.
        outages: Providers down for part of the run.
        chaos: Behaviour -> the share of all calls that meet it, at random.
        seed: The chaos's random seed (the same seed, the same dice).
        streamed: The share of requests that stream their answer.
        timeout: Seconds an attempt may take.
        deadline: Seconds a request may take in all, waits included.
        spend_model: The model (``provider/model``) with a spend budget (empty: none).
        spend_usd: Dollars ``spend_model`` may spend per day; once spent, its requests
            go on to the next model of the chain.
        max_tokens: Each request's ``max_tokens``: with the input, its worst case, which
            is reserved against the budget until the reply's real cost is known.
    """

    dead_key: str = "openai-revoked"
    budget_key: str = "openai-main"
    budget: int = 6
    window: float = 1.5
    retry_after: float = 1.5
    outages: tuple[Outage, ...] = (
        Outage("openai", 0.3, 0.6),
        Outage("anthropic", 0.45, 0.55),
    )
    chaos: Mapping[str, float] = field(
        default_factory=lambda: {
            "rate_limit": 0.03,
            "overloaded": 0.04,
            "server_error": 0.02,
            "truncate": 0.01,
        }
    )
    seed: int = 7
    streamed: float = 0.3
    timeout: float = 5.0
    deadline: float = 15.0
    spend_model: str = CHAIN[0]
    spend_usd: float = 0.012
    max_tokens: int = 64


def budgets(scenario: Scenario) -> list[Budget]:
    """The spend budgets the demo's manager enforces: ``spend_usd`` a day on ``spend_model``."""
    from failover.budgets import Budget

    if not scenario.spend_model:
        return []
    return [Budget(usd=scenario.spend_usd, per="day", scope=f"model:{scenario.spend_model}")]


def _prices(model: str) -> str:
    """``model``'s list prices, in dollars per million tokens in and out."""
    from failover import get_model_entry

    provider, _, name = model.partition("/")
    entry = get_model_entry(provider, name)
    if entry is None or entry.cost_input is None or entry.cost_output is None:
        return "price unknown"
    return f"${entry.cost_input:g} / ${entry.cost_output:g} per million tokens in / out"


def accepted_keys(scenario: Scenario) -> dict[str, list[str]]:
    """Provider -> the keys the simulator accepts: every key but the dead one."""
    accepted: dict[str, list[str]] = {}
    for name, (provider, key) in KEYS.items():
        accepted.setdefault(provider, [])
        if name != scenario.dead_key:
            accepted[provider].append(key)
    return accepted


def script(sim: Simulator, scenario: Scenario, seconds: float) -> None:
    """Script ``sim`` (already serving ``accepted_keys``) for a run of ``seconds``."""
    from failover.testing import Behavior

    if scenario.budget_key:
        sim.script(
            Behavior(
                "rate_limit",
                after=scenario.budget,
                window=scenario.window,
                latency=sim.default.latency,
                retry_after=scenario.retry_after,
            ),
            key=KEYS[scenario.budget_key][1],
        )
    for outage in scenario.outages:
        sim.outage(
            outage.provider,
            start=seconds * outage.start,
            end=seconds * outage.end,
            kind=outage.kind,
        )
    if scenario.chaos:
        sim.chaos(scenario.chaos, seed=scenario.seed)


def _after(model: str) -> str:
    """What becomes of ``model``'s requests once its budget is spent."""
    if model not in CHAIN:
        return "go on down the chain"
    following = CHAIN[CHAIN.index(model) + 1 :]
    if not following:
        return "fail (BudgetExceededError: no model after it)"
    return f"go on to {following[0]}, cheaper ({_prices(following[0])})"


def describe(
    scenario: Scenario, *, total: int, concurrency: int, seconds: float
) -> list[tuple[str, str]]:
    """The scenario as (topic, plain words) rows, printed before the run starts."""
    keys: dict[str, list[str]] = {}
    for name, (provider, _) in KEYS.items():
        keys.setdefault(provider, []).append(name)
    rows = [
        ("chain", " -> ".join(CHAIN) + " (each request tries them in this order, dearest first)"),
        ("keys", "; ".join(f"{provider}: {', '.join(names)}" for provider, names in keys.items())),
    ]
    if scenario.dead_key:
        rows.append(
            (
                "dead key",
                f"{scenario.dead_key}: revoked, the provider answers 401; "
                "disabled at its first use, never tried again",
            )
        )
    if scenario.budget_key:
        rows.append(
            (
                "rate limit",
                f"{scenario.budget_key}: {scenario.budget} requests per {scenario.window:g} s, "
                f"then 429 with retry-after {scenario.retry_after:g} s",
            )
        )
    for outage in scenario.outages:
        rows.append(
            (
                "outage",
                f"{outage.provider} {kind_words(outage.kind, outage.provider)} on every call "
                f"from {seconds * outage.start:.1f} s to {seconds * outage.end:.1f} s",
            )
        )
    if not scenario.outages:
        rows.append(("outage", "none"))
    if scenario.chaos:
        mix = ", ".join(f"{rate:.0%} {kind_words(kind)}" for kind, rate in scenario.chaos.items())
        rows.append(("chaos", f"at random on any call: {mix} (seed {scenario.seed})"))
    else:
        rows.append(("chaos", "none"))
    if scenario.spend_model:
        rows.append(
            (
                "spend budget",
                f"${scenario.spend_usd:g} a day on {scenario.spend_model} "
                f"({_prices(scenario.spend_model)}); each request reserves its worst case "
                f"(max_tokens={scenario.max_tokens}) until it is charged its real cost; once the "
                f"budget is spent, its requests {_after(scenario.spend_model)}",
            )
        )
    rows.append(
        (
            "traffic",
            f"{total} requests over {seconds:g} s, at most {concurrency} at a time, "
            f"{scenario.streamed:.0%} streamed; each may take {scenario.deadline:g} s in all "
            f"(waits included), {scenario.timeout:g} s per attempt",
        )
    )
    return rows
