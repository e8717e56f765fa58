"""The demo's prompt-cache pass: the same conversations with session affinity and without.

Providers keep prompt caches per key: a conversation that stays on one key reads its
earlier turns from the cache, at a fraction of the input price; one rotated from key to
key finds the cache cold wherever it lands. The simulator keeps such a cache (see
:mod:`failover.testing.prompt_cache`), so the demo measures it: a few short conversations
over three keys of one model, twice against a fresh simulator: once each conversation
with its ``session=`` (kept on the key that served it, re-pinned when that key fails),
once with ``affinity="off"`` (each turn where the rotation sends it). Half-way through
each pass one key starts answering 429, so the affinity pass shows a re-pin too.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from failover.catalog import TokenUsage, get_model_entry
from failover.client import ResilientClient
from failover.errors import FailoverError
from failover.events import RepinnedEvent
from failover.gateway.usage import prompt_tokens
from failover.profiles import AuthProfile
from failover.testing import Behavior, Simulator

__all__ = ["CACHE_KEYS", "CACHE_MODEL", "CachePass", "cache_passes"]

CACHE_MODEL = "openai/gpt-4o"
"""The model the conversations talk to (priced from the catalog, cached reads included)."""
CACHE_KEYS = {
    "cache-a": "sk-demo-cache-a-000000000011",
    "cache-b": "sk-demo-cache-b-000000000012",
    "cache-c": "sk-demo-cache-c-000000000013",
}
"""Profile name -> an OpenAI key of the pass (made up, never printed)."""
_FAILING = "cache-a"
_REPLY = (
    "The timeline shows the database stalled on a lock held by the nightly compaction, "
    "requests queued behind it and two web nodes were marked unhealthy; it recovered at "
    "02:14 once the compaction finished, and nothing was lost."
)


@dataclass(frozen=True, slots=True)
class CachePass:
    """One pass of conversations, counted.

    Attributes:
        affinity: Whether each conversation had its ``session``.
        conversations: Conversations held at once.
        turns: Turns of each.
        requests: Turns sent.
        answered: Turns answered.
        failed: Turns that failed (every turn is one or the other).
        prompt_tokens: Input tokens of the answered turns, cached or not.
        cached_tokens: Of them, read from a prompt cache.
        ideal_tokens: What the best affinity could read: every turn after the first its
            previous turn's whole prompt, but the turn of a conversation that had to move
            from the key that failed.
        input_usd: What that input cost at the model's list prices (cached reads at the
            cached price).
        repinned: Conversations moved to another key because theirs failed.
    """

    affinity: bool
    conversations: int
    turns: int
    requests: int
    answered: int
    failed: int
    prompt_tokens: int
    cached_tokens: int
    ideal_tokens: int
    input_usd: float
    repinned: int

    @property
    def share(self) -> float:
        """The share of the input read from a cache."""
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


def _system(conversation: int) -> str:
    """A conversation's own system prompt (about 2,000 characters)."""
    rules = " ".join(
        f"Rule {n}: for customer {conversation}, cite runbook section {n}.{conversation % 5}."
        for n in range(1, 40)
    )
    return f"You are the incident analyst for customer {conversation}. {rules}"


async def cache_passes(
    *, conversations: int = 24, turns: int = 6, latency: float = 0.01
) -> tuple[CachePass, CachePass]:
    """Run the conversations with affinity, then without: (with, without).

    Each pass has its own simulator (a cold cache). ``latency``: the simulator's answer time.
    """
    passes = []
    for affinity in (True, False):
        keys = {"openai": list(CACHE_KEYS.values())}
        async with Simulator(keys=keys, default=Behavior(latency=latency, reply=_REPLY)) as sim:
            passes.append(await _pass(sim, affinity, conversations, turns))
    return passes[0], passes[1]


async def _pass(sim: Simulator, affinity: bool, conversations: int, turns: int) -> CachePass:
    entry = get_model_entry(*CACHE_MODEL.split("/", 1))
    profiles = [
        AuthProfile(name, "openai", key, base_url=sim.base_url("openai"))
        for name, key in CACHE_KEYS.items()
    ]
    total = conversations * turns
    sent = answered = failures = prompt = cached = ideal = repinned = 0
    cost = 0.0
    failed = False
    async with ResilientClient(
        [CACHE_MODEL], profiles, affinity="session" if affinity else "off"
    ) as client:

        @client.on_repinned
        def repin(event: RepinnedEvent) -> None:
            nonlocal repinned
            repinned += 1

        async def conversation(number: int) -> None:
            nonlocal sent, answered, failures, prompt, cached, ideal, cost, failed
            messages = [{"role": "system", "content": _system(number)}]
            last: tuple[int, str | None] | None = None  # the previous answer's prompt, key
            session = f"conversation-{number}" if affinity else None
            for turn in range(turns):
                messages.append(
                    {"role": "user", "content": f"Turn {turn}: what happened next, and why?"}
                )
                sent += 1
                try:
                    reply = await client.complete(messages, session=session, max_tokens=64)
                except FailoverError:
                    failures += 1
                    continue
                answered += 1
                messages.append({"role": "assistant", "content": reply.text})
                usage = reply.usage or TokenUsage()
                tokens = prompt_tokens(usage)
                prompt += tokens
                cached += usage.cache_read_tokens
                if last is not None:
                    moved = failed and last[1] == _FAILING and reply.profile != _FAILING
                    ideal += 0 if moved else last[0]
                last = (tokens, reply.profile)
                if entry is not None:
                    cost += (
                        entry.calculate_cost(
                            TokenUsage(
                                input_tokens=usage.input_tokens,
                                cache_read_tokens=usage.cache_read_tokens,
                                cache_write_tokens=usage.cache_write_tokens,
                            )
                        )
                        or 0.0
                    )
                if not failed and answered >= total // 2:
                    failed = True  # half-way: one key starts answering 429 for good
                    sim.script(Behavior("rate_limit", retry_after=60), key=CACHE_KEYS[_FAILING])

        await asyncio.gather(*(conversation(n) for n in range(conversations)))
    return CachePass(
        affinity,
        conversations,
        turns,
        sent,
        answered,
        failures,
        prompt,
        cached,
        ideal,
        cost,
        repinned,
    )
