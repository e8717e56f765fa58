"""Conversations and budgets: a session on a warm cache, a stream continued, a reply
rejected, a budget that moves the chain on.

Runs against the local simulator, so it needs no API keys.

    python examples/conversations_and_budgets.py
"""

from __future__ import annotations

import asyncio
import json

from failover import AuthProfile, Budget, FailoverEvent, ResilientClient

try:
    from failover.testing import Behavior, Simulator
except ImportError:
    raise SystemExit(
        "This example runs on the local simulator: pip install 'llm-failover[sim]'"
    ) from None

SYSTEM = {"role": "system", "content": "You are a travel agent. " * 40}
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


async def main() -> None:
    async with Simulator() as sim:
        profiles = [
            AuthProfile(
                "oa-1", "openai", "sk-example-openai-0001", base_url=sim.base_url("openai")
            ),
            AuthProfile(
                "oa-2", "openai", "sk-example-openai-0002", base_url=sim.base_url("openai")
            ),
            AuthProfile(
                "claude", "anthropic", "sk-ant-example-0000003", base_url=sim.base_url("anthropic")
            ),
            AuthProfile(
                "gemini", "gemini", "example-gemini-key-04", base_url=sim.base_url("gemini")
            ),
        ]
        chain = ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "gemini/gemini-2.5-flash"]
        budgets = [Budget(usd=0.00015, per="day", scope="model:openai/gpt-4o-mini")]
        async with ResilientClient(
            chain, profiles, budgets=budgets, on_stream_break="continue", deadline=30
        ) as client:

            @client.on_failover
            def moved(event: FailoverEvent) -> None:
                line = f"  {event.kind}: {event.from_model} -> {event.to_model} ({event.reason})"
                print(f"\n{line}" if event.kind == "continue" else line)

            # 1. A session: every turn on the key that served the first, its cache warm.
            conversation = [SYSTEM, {"role": "user", "content": "Plan a weekend in Lisbon."}]
            for turn in range(3):
                reply = await client.complete(conversation, max_tokens=50, session="trip-42")
                cached = reply.usage.cache_read_tokens
                print(f"turn {turn + 1}: {reply.model} via {reply.profile}, {cached} tokens cached")
                conversation += [reply.message, {"role": "user", "content": f"And day {turn + 2}?"}]

            # 2. A reply that misses the schema is rejected: the next model answers.
            sim.script(Behavior("invalid_json"), model="gpt-4o-mini")
            strict = {"name": "city", "schema": SCHEMA, "strict": True}
            reply = await client.complete(
                [{"role": "user", "content": "Name a city."}],
                max_tokens=20,
                response_format={"type": "json_schema", "json_schema": strict},
            )
            print(f"schema: {json.loads(reply.text)} from {reply.model}")
            print(f"  attempts: {[a.outcome for a in reply.attempts]}")
            sim.script(Behavior("healthy"), model="gpt-4o-mini")

            # 3. A stream cut after three chunks is continued by a model that takes a prefill.
            sim.script(Behavior("truncate", after=3), provider="anthropic")
            print("stream: ", end="")
            async with client.stream(
                [{"role": "user", "content": "Describe Lisbon."}],
                chain=["anthropic/claude-haiku-4-5", "gemini/gemini-2.5-flash"],
            ) as stream:
                async for chunk in stream:
                    print(chunk.text, end="", flush=True)
            print(f"\n  continued: answered by {stream.model}")
            sim.script(None, provider="anthropic")

            # 4. Once gpt-4o-mini's budget is spent, requests go on to the next model.
            for _ in range(3):
                reply = await client.complete(conversation, max_tokens=50)
            spent = await client.manager.admission.ledger.used(budgets[0])
            print(f"budget: ${spent:.6f} of ${budgets[0].usd} spent; answered by {reply.model}")


if __name__ == "__main__":
    asyncio.run(main())
