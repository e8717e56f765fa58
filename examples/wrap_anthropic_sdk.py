"""Wrap the official anthropic SDK (built on httpx2): a dead key is disabled, the next used.

python examples/wrap_anthropic_sdk.py
"""

from __future__ import annotations

import asyncio

from failover import AuthProfile, ResilientTransport

try:
    import anthropic
    import httpx2

    from failover.testing import Simulator
except ImportError:
    raise SystemExit(
        "This example needs the anthropic SDK and the local simulator: pip install anthropic 'llm-failover[sim]'"
    ) from None


async def main() -> None:
    async with Simulator(keys={"anthropic": ["sk-ant-live-key-000002"]}) as sim:
        base_url = sim.base_url("anthropic")  # in production: https://api.anthropic.com
        profiles = [
            AuthProfile("revoked", "anthropic", "sk-ant-revoked-0000001", base_url=base_url),
            AuthProfile("live", "anthropic", "sk-ant-live-key-000002", base_url=base_url),
        ]
        transport = ResilientTransport(profiles, provider="anthropic")
        http_client = httpx2.AsyncClient(transport=transport)
        sdk = anthropic.AsyncAnthropic(
            api_key="unused", base_url=base_url, max_retries=0, http_client=http_client
        )

        transport.on_cooldown(lambda e: print(f"  {e.profile}: {e.status} ({e.reason})"))
        message = await sdk.messages.create(
            model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
        )
        print("anthropic SDK:", message.content[0].text)
        await http_client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
