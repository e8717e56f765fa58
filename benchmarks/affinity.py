"""Session affinity and prompt caches: cached input with affinity, without it, and the ideal.

200 ten-turn conversations (``AFFINITY_CONVERSATIONS``) over one chain step that is a group
of two deployments of one model (``openai/gpt-4o`` and ``azure/gpt-4o``) and 3 keys (two
OpenAI keys, one Azure key), on the simulator, which keeps a prompt cache per key and
model (a prefix its key sent within 5 minutes is read at the cached price). Half-way
through (once half the turns are answered) one OpenAI key starts answering 429 with a
long ``retry-after``: the conversations on it move to another key, where their cache is
cold for one turn. Every conversation has its own system prompt (about 1,500 tokens, above
the 1,024 OpenAI caches from) and turns of about 100 tokens in, 150 out.

Modes, each against a fresh simulator (a cold cache), the same conversations and failure:

- ``session``: ``complete(..., session=f"conv-{i}")``, the conversation's id;
- ``prefix``: ``ResilientClient(affinity="prefix")``, the session derived from the stable
  prefix (system prompt and first turn), no id passed;
- ``off``: ``affinity="off"``: each turn goes where the strategy (round robin) sends it.

Printed per mode: the share of all input tokens read from a cache, that share as a part
of the ideal (every turn after the first cached whole, i.e. its previous turn's prompt,
except the one turn of each conversation that had to move when its key failed; target at
least 90 %), the turns served on another key than the conversation's previous turn, and
the input's cost at the catalog's prices (``ModelEntry.calculate_cost``, cached reads at
``cost_cache_read``); then the dollars affinity saved against ``off``.

``make bench`` runs :func:`affinity_rows` (wired in by benchmarks/run.py); on its own::

    .venv/bin/python benchmarks/affinity.py
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

from failover import AuthProfile, ResilientClient, get_model_entry
from failover.catalog import TokenUsage
from failover.testing import Behavior, Simulator

CONVERSATIONS = int(os.environ.get("AFFINITY_CONVERSATIONS", "200"))
TURNS = int(os.environ.get("AFFINITY_TURNS", "10"))
CONCURRENCY = 32
STEP = ["openai/gpt-4o", "azure/gpt-4o"]
KEYS = {
    "openai-1": ("openai", "sk-bench-affinity-openai-000001"),
    "openai-2": ("openai", "sk-bench-affinity-openai-000002"),
    "azure-1": ("azure", "az-bench-affinity-azure-0000003"),
}
FAILING = "openai-1"
REPLY = (
    "Here is what the logs show for that window: the primary database stalled on a lock "
    "held by the nightly compaction job, requests queued behind it, and the load balancer "
    "marked two web nodes unhealthy after their health checks timed out. The compaction "
    "finished at 02:14 and traffic recovered within a minute; nothing was lost."
)
"""Every answer (about 150 tokens at the simulator's 4 characters a token)."""
MODES = ("session", "prefix", "off")


def system_prompt(conversation: int) -> str:
    """A customer's own system prompt, about 6,000 characters (1,500 tokens)."""
    rules = " ".join(
        f"Rule {n}: when customer {conversation} asks about service {n}, cite its runbook "
        f"section {n}.{conversation % 7} and the on-call rota before anything else."
        for n in range(1, 45)
    )
    return f"You are the incident analyst for customer {conversation}. {rules}"


def question(conversation: int, turn: int) -> str:
    """A follow-up of about 400 characters."""
    return (
        f"Turn {turn} for customer {conversation}: looking at the incident timeline again, "
        "which of the alerts fired before the first user-facing error, which fired after, "
        "and is there anything in the deploy log or the config changes of that afternoon "
        "that could have made the lock contention worse than on a normal night? Keep it short."
    )


@dataclass(frozen=True, slots=True)
class Turn:
    """One answered turn."""

    conversation: int
    turn: int
    after_failure: bool
    profile: str
    usage: TokenUsage


def _prompt(usage: TokenUsage) -> int:
    return usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens


async def run_mode(mode: str) -> dict[str, Any]:
    """Every conversation through a fresh simulator with affinity ``mode``."""
    accepted: dict[str, list[str]] = {}
    for provider, key in KEYS.values():
        accepted.setdefault(provider, []).append(key)
    async with Simulator(keys=accepted, default=Behavior(reply=REPLY)) as sim:
        profiles = [
            AuthProfile(name, provider, key, base_url=sim.base_url(provider))
            for name, (provider, key) in KEYS.items()
        ]
        turns: list[Turn] = []
        total = CONVERSATIONS * TURNS
        failed_at: list[float] = []
        gate = asyncio.Semaphore(CONCURRENCY)
        affinity = "off" if mode == "off" else ("prefix" if mode == "prefix" else "session")
        async with ResilientClient(
            [STEP],
            profiles,
            strategy="round_robin",
            affinity=affinity,  # type: ignore[arg-type]
        ) as client:

            async def conversation(number: int) -> None:
                messages: list[dict[str, Any]] = [
                    {"role": "system", "content": system_prompt(number)}
                ]
                for turn in range(TURNS):
                    messages.append({"role": "user", "content": question(number, turn)})
                    async with gate:
                        session = f"conv-{number}" if mode == "session" else None
                        reply = await client.complete(messages, session=session, max_tokens=256)
                    after = bool(failed_at)  # answered once the key had failed
                    assert reply.usage is not None
                    assert reply.profile is not None
                    turns.append(Turn(number, turn, after, reply.profile, reply.usage))
                    messages.append({"role": "assistant", "content": reply.text})
                    if len(turns) >= total // 2 and not failed_at:
                        failed_at.append(time.monotonic())
                        sim.script(Behavior("rate_limit", retry_after=600), key=KEYS[FAILING][1])

            started = time.perf_counter()
            await asyncio.gather(*(conversation(n) for n in range(CONVERSATIONS)))
            elapsed = time.perf_counter() - started
        failing_calls = sum(
            1 for r in sim.requests if r.key == KEYS[FAILING][1] and r.outcome == "rate_limit"
        )
    return summarise(mode, turns, elapsed, failing_calls)


def summarise(mode: str, turns: list[Turn], elapsed: float, failing_calls: int) -> dict[str, Any]:
    """The cached share, the ideal one, moves and cost of one mode's turns."""
    by_conversation: dict[int, list[Turn]] = {}
    for turn in turns:
        by_conversation.setdefault(turn.conversation, []).append(turn)
    prompt = cached = ideal = moved = 0
    failed_over = 0
    usage_total = TokenUsage()
    for conversation in by_conversation.values():
        conversation.sort(key=lambda t: t.turn)
        on_failing = False  # served by the failing key until it failed
        for index, turn in enumerate(conversation):
            prompt += _prompt(turn.usage)
            cached += turn.usage.cache_read_tokens
            usage_total = _add(usage_total, turn.usage)
            if index == 0:
                on_failing = turn.profile == FAILING
                continue
            previous = conversation[index - 1]
            moved += turn.profile != previous.profile
            if turn.after_failure and on_failing and turn.profile != FAILING:
                on_failing = False  # the turn that had to move: the ideal reads nothing here
                failed_over += 1
            else:
                ideal += _prompt(previous.usage)  # the previous turn's whole prompt
                on_failing = on_failing if turn.after_failure else turn.profile == FAILING
    entry = get_model_entry("openai", "gpt-4o")
    assert entry is not None
    input_only = TokenUsage(
        input_tokens=usage_total.input_tokens,
        cache_read_tokens=usage_total.cache_read_tokens,
        cache_write_tokens=usage_total.cache_write_tokens,
    )
    uncached = TokenUsage(input_tokens=prompt)
    return {
        "mode": mode,
        "turns": len(turns),
        "seconds": elapsed,
        "prompt_tokens": prompt,
        "cached_tokens": cached,
        "ideal_tokens": ideal,
        "cached_share": cached / prompt if prompt else 0.0,
        "ideal_share": ideal / prompt if prompt else 0.0,
        "of_ideal": cached / ideal if ideal else 0.0,
        "moved": moved,
        "failed_over": failed_over,
        "failing_key_429s": failing_calls,
        "input_usd": entry.calculate_cost(input_only) or 0.0,
        "uncached_input_usd": entry.calculate_cost(uncached) or 0.0,
        "total_usd": entry.calculate_cost(usage_total) or 0.0,
    }


def _add(a: TokenUsage, b: TokenUsage) -> TokenUsage:
    return TokenUsage(
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cache_read_tokens=a.cache_read_tokens + b.cache_read_tokens,
        cache_write_tokens=a.cache_write_tokens + b.cache_write_tokens,
    )


async def affinity_rows() -> dict[str, Any]:
    """Every mode's row, one mode after the other (each against a fresh simulator)."""
    rows = {mode: await run_mode(mode) for mode in MODES}
    off = rows["off"]
    for mode in ("session", "prefix"):
        rows[mode]["saved_usd"] = off["total_usd"] - rows[mode]["total_usd"]
    # without affinity there is no conversation to keep: its share against the ideal of
    # the run with sessions (the same conversations, the same failure)
    off["of_ideal"] = off["cached_tokens"] / rows["session"]["ideal_tokens"]
    return {"modes": rows, "conversations": CONVERSATIONS, "turns": TURNS}


def print_rows(rows: dict[str, Any]) -> None:
    """Print the rows the way benchmarks/run.py prints its table."""
    modes = rows["modes"]
    session = modes["session"]
    print(
        f"\n11. session affinity: {rows['conversations']} conversations x {rows['turns']} turns "
        f"over {' + '.join(STEP)} (3 keys), key {FAILING} answering 429 from half-way;"
        f"\n    ideal cached share of the input {session['ideal_share']:.1%} (every turn after "
        f"the first, except the {session['failed_over']} turns that had to move)"
        "\n    affinity   cached share   of ideal   moved turns   input cost $   saved $   seconds"
    )
    for mode, row in modes.items():
        saved = f"{row['saved_usd']:8.2f}" if "saved_usd" in row else "       -"
        print(
            f"    {mode:9} {row['cached_share']:13.1%} {row['of_ideal']:10.1%}"
            f" {row['moved']:12} {row['input_usd']:14.2f}  {saved} {row['seconds']:9.1f}"
        )
    print(
        f"    (input uncached would cost ${session['uncached_input_usd']:.2f}; saved: the whole "
        f"bill, output included, against affinity off, at {STEP[0]}'s list prices; target: "
        "session and prefix >= 90 % of the ideal)"
    )


async def main() -> None:
    print_rows(await affinity_rows())


if __name__ == "__main__":
    asyncio.run(main())
