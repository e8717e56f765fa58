"""Quick start: complete(), stream(), call() and an on_failover hook.

Runs against the local simulator, so it needs no API keys: the first OpenAI key is
rate-limited, and the request quietly moves to the second.

    python examples/quickstart.py
"""

from __future__ import annotations

import asyncio

from failover import AttemptContext, AuthProfile, FailoverEvent, ResilientClient

try:
    from failover.testing import Behavior, Simulator
except ImportError:
    raise SystemExit(
        "This example runs on the local simulator: pip install 'llm-failover[sim]'"
    ) from None


async def main() -> None:
    async with Simulator() as sim:
        sim.script(Behavior("rate_limit", retry_after=30), key="sk-first-key-000000001")
        profiles = [
            AuthProfile(
                "first", "openai", "sk-first-key-000000001", base_url=sim.base_url("openai")
            ),
            AuthProfile(
                "second", "openai", "sk-second-key-00000002", base_url=sim.base_url("openai")
            ),
            AuthProfile(
                "claude", "anthropic", "sk-ant-key-0000000003", base_url=sim.base_url("anthropic")
            ),
        ]
        chain = ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]

        async with ResilientClient(chain, profiles, deadline=30) as client:

            @client.on_failover
            async def announce(event: FailoverEvent) -> None:
                print(f"  failover: {event.from_profile} -> {event.to_profile} ({event.reason})")

            # 1. complete(): one call; key rotation, backoff and fallback happen inside.
            result = await client.complete([{"role": "user", "content": "Hello!"}], max_tokens=100)
            print(f"complete: {result.text!r} from {result.model} via {result.profile}")
            print(f"  {len(result.attempts)} attempts, cost ${result.cost_usd:.8f}")

            # 2. stream(): failover until the first chunk, StreamInterrupted after it.
            print("stream:   ", end="")
            async with client.stream([{"role": "user", "content": "Stream, please"}]) as stream:
                async for chunk in stream:
                    print(chunk.text, end="", flush=True)
            print(f"\n  usage {stream.usage}")

            # 3. call(): any async function, with the same failover around it.
            async def whoami(ctx: AttemptContext) -> str:
                return f"{ctx.model.key} at {ctx.base_url} with key {ctx.profile.masked_key}"

            print("call:    ", await client.call(whoami))


if __name__ == "__main__":
    asyncio.run(main())
