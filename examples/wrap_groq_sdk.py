"""Wrap the official groq SDK (built on httpx): a rate-limited key is skipped.

The groq SDK takes the bare host as its base URL (it appends /openai/v1/...), so the
profiles' base URLs are written the same way.

    python examples/wrap_groq_sdk.py
"""

from __future__ import annotations

import asyncio

import httpx

from failover import AuthProfile, ResilientTransport

try:
    import groq

    from failover.testing import Behavior, Simulator
except ImportError:
    raise SystemExit(
        "This example needs the groq SDK and the local simulator: pip install groq 'llm-failover[sim]'"
    ) from None


async def main() -> None:
    async with Simulator() as sim:
        sim.script(Behavior("rate_limit", retry_after=60), key="gsk_groqkeyone00000001")
        base_url = f"{sim.root_url}/groq"  # in production: https://api.groq.com
        profiles = [
            AuthProfile("one", "groq", "gsk_groqkeyone00000001", base_url=base_url),
            AuthProfile("two", "groq", "gsk_groqkeytwo00000002", base_url=base_url),
        ]
        transport = ResilientTransport(profiles, provider="groq")
        http_client = httpx.AsyncClient(transport=transport)
        sdk = groq.AsyncGroq(
            api_key="unused", base_url=base_url, max_retries=0, http_client=http_client
        )

        for _ in range(3):
            reply = await sdk.chat.completions.create(
                model="llama-3.1-8b-instant", messages=[{"role": "user", "content": "Hi"}]
            )
            print("groq SDK:", reply.choices[0].message.content)
        print(
            "calls per key:",
            {
                k[-4:]: sim.calls(key=k)
                for k in ("gsk_groqkeyone00000001", "gsk_groqkeytwo00000002")
            },
        )
        await http_client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
