"""Wrap the official openai SDK (built on httpx2): key rotation and fallback, no rewrite.

python examples/wrap_openai_sdk.py
"""

from __future__ import annotations

import asyncio

from failover import AuthProfile, FailoverConfig, ResilientTransport

try:
    import httpx2
    import openai

    from failover.testing import Behavior, Simulator
except ImportError:
    raise SystemExit(
        "This example needs the openai SDK and the local simulator: pip install openai 'llm-failover[sim]'"
    ) from None


async def main() -> None:
    async with Simulator() as sim:
        sim.script(Behavior("rate_limit", retry_after=30), key="sk-openai-key-a-0000001")
        sim.script("overloaded", model="gpt-4o-mini")
        base_url = sim.base_url("openai")  # in production: https://api.openai.com/v1
        profiles = [
            AuthProfile("a", "openai", "sk-openai-key-a-0000001", base_url=base_url),
            AuthProfile("b", "openai", "sk-openai-key-b-0000002", base_url=base_url),
        ]

        # The three lines that wrap the SDK:
        transport = ResilientTransport(
            profiles,
            provider="openai",
            fallback_models=["gpt-4o"],
            config=FailoverConfig(max_retries=1, retry_delay=0.2),
        )
        http_client = httpx2.AsyncClient(transport=transport)
        sdk = openai.AsyncOpenAI(
            api_key="unused", base_url=base_url, max_retries=0, http_client=http_client
        )

        transport.on_failover(lambda e: print(f"  {e.kind} failover: {e.reason}"))
        reply = await sdk.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        )
        print("openai SDK:", reply.choices[0].message.content)
        await http_client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
