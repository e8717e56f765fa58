"""Wrap the sync openai SDK (openai.OpenAI on httpx2.Client): rotation and fallback, no rewrite.

The same ResilientTransport serves sync clients: its failover runs on a thread of its own,
and a call blocks only the thread that makes it.

    python examples/wrap_openai_sdk_sync.py
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


def ask_with_the_sync_sdk(base_url: str) -> None:
    """Plain synchronous code, as in an existing app (here pointed at the simulator)."""
    profiles = [
        AuthProfile("a", "openai", "sk-openai-key-a-0000001", base_url=base_url),
        AuthProfile("b", "openai", "sk-openai-key-b-0000002", base_url=base_url),
    ]
    transport = ResilientTransport(
        profiles,
        provider="openai",
        fallback_models=["gpt-4o"],
        config=FailoverConfig(max_retries=1, retry_delay=0.2),
    )
    transport.on_failover(lambda e: print(f"  {e.kind} failover: {e.reason}"))

    # The sync client takes the transport like the async one; closing it stops the
    # transport's thread.
    with httpx2.Client(transport=transport) as http_client:
        sdk = openai.OpenAI(
            api_key="unused", base_url=base_url, max_retries=0, http_client=http_client
        )
        reply = sdk.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        )
        print("openai SDK (sync):", reply.choices[0].message.content)

        stream = sdk.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        print("stream (sync):", text)
    print("key a:", transport.manager.get_profile("a").status.value)


async def main() -> None:
    async with Simulator() as sim:  # the simulator needs an event loop: the SDK runs beside it
        sim.script(Behavior("rate_limit", retry_after=30), key="sk-openai-key-a-0000001")
        sim.script("overloaded", model="gpt-4o-mini")
        # in production: ask_with_the_sync_sdk("https://api.openai.com/v1"), no simulator
        await asyncio.to_thread(ask_with_the_sync_sdk, sim.base_url("openai"))


if __name__ == "__main__":
    asyncio.run(main())
