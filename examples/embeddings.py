"""Embeddings with failover: key rotation, a model fallback of the same dimension, and a
chain that would mix vector lengths refused before any call.

Runs against the local simulator, so it needs no API keys.

    python examples/embeddings.py
"""

from __future__ import annotations

import asyncio
import math

from failover import AuthProfile, ConfigError, EmbeddingChain, FailoverEvent, ResilientClient

try:
    from failover.testing import Behavior, Simulator
except ImportError:
    raise SystemExit(
        "This example runs on the local simulator: pip install 'llm-failover[sim]'"
    ) from None


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


async def main() -> None:
    async with Simulator() as sim:
        profiles = [
            AuthProfile(
                "oa-1", "openai", "sk-embed-example-000001", base_url=sim.base_url("openai")
            ),
            AuthProfile(
                "oa-2", "openai", "sk-embed-example-000002", base_url=sim.base_url("openai")
            ),
            AuthProfile(
                "gem", "gemini", "gemini-example-key-0003", base_url=sim.base_url("gemini")
            ),
        ]
        # Both models return 3072-long vectors, so either fits the same index.
        ids = ["openai/text-embedding-3-large", "gemini/gemini-embedding-001"]
        chain = EmbeddingChain(ids)
        print(f"chain: {chain}")
        documents = ["The cat sat on the mat.", "Stocks fell sharply today.", "A kitten naps."]

        async with ResilientClient(ids, profiles, deadline=30) as client:

            @client.on_failover
            async def announce(event: FailoverEvent) -> None:
                print(f"  failover ({event.kind}): {event.from_model} -> {event.to_model}")

            # 1. The first key is rate-limited: the request moves to the second key.
            sim.script(Behavior("rate_limit", retry_after=30), key="sk-embed-example-000001")
            result = await client.embed(documents, model_chain=chain)
            print(
                f"embedded {len(result)} x {result.dimensions} with {result.model} via {result.profile}"
            )
            print(f"  usage {result.usage.input_tokens} tokens, cost ${result.cost_usd:.8f}")
            print(f"  similarity(cat, stocks) = {cosine(result[0], result[1]):+.3f}")

            # 2. OpenAI is down: the next model of the same dimension answers.
            sim.outage("openai", start=0, end=600)
            query = await client.embed(
                "Where is the cat?", model_chain=chain, task_type="retrieval_query"
            )
            print(f"query embedded by {query.model} ({query.dimensions} dimensions)")
            print(f"  attempts: {[a.outcome for a in query.attempts]}")

        # 3. A chain that mixes vector lengths is refused when it is built.
        try:
            EmbeddingChain(["openai/text-embedding-3-small", "gemini/text-embedding-004"])
        except ConfigError as error:
            print(f"refused: {error}")
        shortened = EmbeddingChain(
            ["openai/text-embedding-3-small", "gemini/text-embedding-004"], dimensions=768
        )
        print(f"with dimensions=768: {shortened.vector_dimensions} for every model")


if __name__ == "__main__":
    asyncio.run(main())
