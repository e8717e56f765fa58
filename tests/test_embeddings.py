"""client.embed(): every wire format over the simulator, with the same failover as complete()."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest

from failover import (
    AllAttemptsFailed,
    AuthProfile,
    ConfigError,
    EmbeddingChain,
    Embeddings,
    FailoverEvent,
    MalformedResponseError,
    ModelCatalog,
    ResilientClient,
    SuccessEvent,
)
from failover.providers import get_adapter
from failover.testing import Behavior, Simulator

KEYS = {
    "openai": ("sk-embed-first-0000000001", "sk-embed-second-000000002"),
    "azure": ("azure-embed-key-00000003",),
    "gemini": ("gemini-embed-key-0000004",),
    "ollama-native": ("ollama-embed-key-000005",),
}
TEXTS = ["the cat sat on the mat", "a dog barked at the moon", "tea, earl grey, hot"]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator() as simulator:
        yield simulator


def profiles(sim: Simulator) -> list[AuthProfile]:
    return [
        AuthProfile(f"{provider}-{number}", provider, key, base_url=sim.base_url(provider))
        for provider, keys in KEYS.items()
        for number, key in enumerate(keys, 1)
    ]


def client_for(sim: Simulator, chain: list[Any], **options: Any) -> ResilientClient:
    return ResilientClient(chain, profiles(sim), **options)


# -- each wire format -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "dimensions", "priced"),
    [
        ("openai/text-embedding-3-small", 1536, True),
        ("azure/text-embedding-3-small", 1536, True),
        ("gemini/text-embedding-004", 768, False),
        ("ollama-native/nomic-embed-text", 768, False),
    ],
)
async def test_each_wire_embeds_a_batch_in_order_with_usage_and_cost(
    sim: Simulator, model: str, dimensions: int, priced: bool
) -> None:
    async with client_for(sim, [model]) as client:
        result = await client.embed(TEXTS)
    assert isinstance(result, Embeddings)
    assert result.model == model and len(result) == len(TEXTS)
    assert result.dimensions == dimensions
    assert all(len(vector) == dimensions for vector in result.vectors)
    assert len({tuple(vector) for vector in result.vectors}) == len(TEXTS)  # one per text
    assert [a.outcome for a in result.attempts] == ["ok"]
    assert repr(result).startswith(f"Embeddings({len(TEXTS)} vectors x {dimensions}")
    received = sim.requests[-1]
    assert received.model == model.partition("/")[2]
    if model.startswith("gemini/"):  # Gemini reports no token counts: no made-up cost
        assert received.body["requests"][1]["content"]["parts"][0]["text"] == TEXTS[1]
        assert result.usage.input_tokens == 0 and result.cost_usd is None
    else:
        assert result.usage.input_tokens > 0
    if priced:
        assert result.cost_usd == pytest.approx(result.usage.input_tokens * 0.02 / 1e6)
    elif not model.startswith("gemini/"):
        assert result.cost_usd is None  # a local model has no price


async def test_one_input_uses_gemini_embed_content_with_task_type_and_title(
    sim: Simulator,
) -> None:
    async with client_for(sim, ["gemini/gemini-embedding-001"]) as client:
        result = await client.embed(
            "what is a vector?", task_type="retrieval_document", title="Vectors", dimensions=768
        )
    body = sim.requests[-1].body
    assert body["content"] == {"parts": [{"text": "what is a vector?"}]}
    assert body["taskType"] == "RETRIEVAL_DOCUMENT"
    assert body["title"] == "Vectors" and body["outputDimensionality"] == 768
    assert len(result.vectors) == 1 and result.dimensions == 768


async def test_the_same_model_on_two_deployments_gives_the_same_vectors(sim: Simulator) -> None:
    async with client_for(sim, ["openai/text-embedding-3-small"]) as client:
        direct = await client.embed(TEXTS, model_chain=["openai/text-embedding-3-small"])
        azure = await client.embed(TEXTS, model_chain=["azure/text-embedding-3-small"])
    assert direct.vectors == azure.vectors
    assert sim.requests[-1].provider == "azure"


async def test_base64_vectors_are_decoded(sim: Simulator) -> None:
    adapter: Any = get_adapter("openai")
    vector = [0.25, -1.5, 3.0]
    encoded = base64.b64encode(struct.pack("<3f", *vector)).decode()
    body = (
        b'{"data": [{"index": 1, "embedding": [1, 2, 3]}, {"index": 0, "embedding": "'
        + encoded.encode()
        + b'"}], "usage": {"prompt_tokens": 4, "total_tokens": 4}}'
    )
    result = adapter.parse_embedding_response(body, 2)
    assert result.vectors == [vector, [1.0, 2.0, 3.0]]  # in the inputs' order, not the reply's
    assert result.usage.input_tokens == 4


@pytest.mark.parametrize(
    "body",
    [
        b'{"data": [{"index": 0, "embedding": [1, 2]}]}',  # one vector for two inputs
        b'{"data": [{"index": 0, "embedding": [1, 2]}, {"index": 1, "embedding": [1]}]}',
        b'{"data": [{"index": 0, "embedding": [1, 2]}, {"index": 1, "embedding": ["x", 2]}]}',
        b'{"data": [{"index": 0, "embedding": [1, 2]}, {"index": 1, "embedding": "@@"}]}',
        b'{"object": "list"}',
    ],
)
def test_a_reply_that_is_not_one_vector_per_input_is_malformed(body: bytes) -> None:
    adapter: Any = get_adapter("openai")
    with pytest.raises(MalformedResponseError):
        adapter.parse_embedding_response(body, 2)


# -- failover -------------------------------------------------------------------------------


async def test_a_429_rotates_to_the_next_key_and_the_key_rests(sim: Simulator) -> None:
    first, second = KEYS["openai"]
    sim.script(Behavior("rate_limit", retry_after=30), key=first)
    async with client_for(sim, ["openai/text-embedding-3-small"]) as client:
        result = await client.embed(TEXTS)
        again = await client.embed(TEXTS)
    assert result.profile == again.profile == "openai-2"
    assert [a.outcome for a in result.attempts] == ["rate_limit", "ok"]
    assert [a.outcome for a in again.attempts] == ["ok"]  # the limited key is not asked again
    assert sim.calls(key=first) == 1 and sim.calls(key=second) == 2


async def test_an_outage_falls_over_to_the_next_model_of_the_same_dimension(
    sim: Simulator,
) -> None:
    sim.outage("openai", start=0, end=600)
    events: list[FailoverEvent] = []
    successes: list[SuccessEvent] = []
    chain = ["openai/text-embedding-3-large", "gemini/gemini-embedding-001"]  # both 3072
    async with client_for(sim, chain) as client:
        client.on_failover(events.append)
        client.on_success(successes.append)
        result = await client.embed(TEXTS)
    assert result.model == "gemini/gemini-embedding-001" and result.dimensions == 3072
    assert [a.model for a in result.attempts][-1] == "gemini/gemini-embedding-001"
    assert {a.outcome for a in result.attempts[:-1]} == {"overloaded"}
    assert events[-1].to_model == "gemini/gemini-embedding-001"
    assert successes[-1].model == "gemini/gemini-embedding-001"


async def test_a_slow_embedding_is_hedged_on_another_deployment(sim: Simulator) -> None:
    sim.script(Behavior(latency=5), provider="openai")
    group = [["openai/text-embedding-3-small", "azure/text-embedding-3-small"]]
    async with client_for(sim, group, hedge_after=0.05) as client:
        hedges: list[Any] = []
        client.on_hedge(hedges.append)
        result = await client.embed(TEXTS)
    assert result.model == "azure/text-embedding-3-small" and len(hedges) == 1
    assert sorted(a.outcome for a in result.attempts) == ["cancelled", "ok"]
    assert client.manager.get_profile("openai-1").status.value == "available"  # untouched


async def test_a_group_of_deployments_serves_sideways(sim: Simulator) -> None:
    sim.outage("openai", start=0, end=600)
    group = [["openai/text-embedding-3-small", "azure/text-embedding-3-small"]]
    async with client_for(sim, group) as client:
        result = await client.embed(TEXTS)
    assert result.model == "azure/text-embedding-3-small"


async def test_dimensions_are_sent_only_to_models_that_need_shortening(sim: Simulator) -> None:
    sim.outage("openai", start=0, end=600)
    chain = ["openai/text-embedding-3-small", "gemini/text-embedding-004"]
    async with client_for(sim, chain) as client:
        result = await client.embed(TEXTS, dimensions=768)
    openai_body = next(r.body for r in sim.requests if r.provider == "openai")
    assert openai_body["dimensions"] == 768
    assert all("outputDimensionality" not in item for item in sim.requests[-1].body["requests"])
    assert result.model == "gemini/text-embedding-004" and result.dimensions == 768


async def test_a_reply_of_the_wrong_length_falls_over(sim: Simulator) -> None:
    sim.script(Behavior(dimensions=10), provider="openai")  # ignores what the model returns
    chain = ["openai/text-embedding-3-large", "gemini/gemini-embedding-001"]
    async with client_for(sim, chain) as client:
        result = await client.embed(TEXTS)
    assert result.attempts[0].outcome == "malformed"
    assert "10-dimensional" in str(result.attempts[0].error)
    assert result.model == "gemini/gemini-embedding-001" and result.dimensions == 3072


async def test_a_batch_too_large_for_gemini_goes_to_the_next_model_uncalled(
    sim: Simulator,
) -> None:
    chain = ["gemini/text-embedding-004", "ollama-native/nomic-embed-text"]
    texts = [f"text number {n}" for n in range(101)]
    async with client_for(sim, chain) as client:
        result = await client.embed(texts)
    assert result.model == "ollama-native/nomic-embed-text" and len(result) == 101
    assert result.attempts[0].outcome == "unsupported"
    assert sim.calls(provider="gemini") == 0


async def test_when_everything_fails_the_error_has_every_attempt(sim: Simulator) -> None:
    sim.outage("openai", start=0, end=600, kind="server_error")
    sim.outage("gemini", start=0, end=600, kind="server_error")
    chain = ["openai/text-embedding-3-large", "gemini/gemini-embedding-001"]
    async with client_for(sim, chain, deadline=5) as client:
        with pytest.raises(AllAttemptsFailed) as caught:
            await client.embed(TEXTS)
    assert {a.model for a in caught.value.attempts} == set(chain)
    assert all(key not in str(caught.value) for keys in KEYS.values() for key in keys)


async def test_a_hanging_provider_ends_at_the_deadline(sim: Simulator) -> None:
    sim.script("hang", provider="ollama-native")
    async with client_for(sim, ["ollama-native/nomic-embed-text"], deadline=0.5) as client:
        with pytest.raises(AllAttemptsFailed, match="deadline"):
            await client.embed(TEXTS)


# -- checks before any call -----------------------------------------------------------------


def test_a_chain_mixing_dimensions_is_refused_naming_each_model() -> None:
    with pytest.raises(ConfigError) as caught:
        EmbeddingChain(["openai/text-embedding-3-small", "gemini/text-embedding-004"])
    message = str(caught.value)
    assert "openai/text-embedding-3-small (1536)" in message
    assert "gemini/text-embedding-004 (768)" in message


def test_a_mixed_chain_is_allowed_when_asked_for_or_shortened() -> None:
    ids = ["openai/text-embedding-3-small", "gemini/text-embedding-004"]
    assert EmbeddingChain(ids, mixed_dimensions=True).vector_dimensions is None
    assert EmbeddingChain(ids, dimensions=768).vector_dimensions == 768


def test_a_model_that_cannot_shorten_its_vectors_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"text-embedding-ada-002 returns 1536.*cannot return 256"
    ):
        EmbeddingChain(["openai/text-embedding-ada-002"], dimensions=256)


def test_unknown_dimensions_must_be_declared_in_a_chain_of_several() -> None:
    catalog = ModelCatalog()
    ids = ["ollama-native/my-embedder", "openai/text-embedding-3-small"]
    with pytest.raises(ConfigError, match=r"ollama-native/my-embedder is unknown.*declare"):
        EmbeddingChain(ids, catalog=catalog)
    declared = catalog.declare_embedding("ollama-native/my-embedder", 1536)
    assert declared.embedding_dimensions == 1536
    assert EmbeddingChain(ids, catalog=catalog).vector_dimensions == 1536
    assert EmbeddingChain(["ollama-native/other"], catalog=catalog).vector_dimensions is None


def test_catalog_knows_well_known_embedding_models() -> None:
    catalog = ModelCatalog()
    small = catalog.get("openai", "text-embedding-3-small")
    assert small is not None and small.embedding_dimensions == 1536 and small.cost_input
    tagged = catalog.get("ollama-native", "nomic-embed-text:latest")
    assert tagged is not None and tagged.embedding_dimensions == 768
    declared = catalog.declare_embedding("openai/text-embedding-3-large", 1024, adjustable=True)
    assert declared.cost_input == pytest.approx(0.13)  # prices kept
    with pytest.raises(ConfigError):
        catalog.declare_embedding("openai/x", 0)


def test_a_provider_without_embeddings_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"anthropic.*no embeddings API"):
        EmbeddingChain(["anthropic/claude-haiku-4-5"])


@pytest.mark.parametrize(
    ("inputs", "options", "complaint"),
    [
        ([], {}, "must not be empty"),
        ("", {}, r"inputs\[0\] is an empty string"),
        (["fine", ""], {}, r"inputs\[1\] is an empty string"),
        (["fine", 3], {}, r"inputs\[1\] must be a str"),
        (b"bytes", {}, "got bytes"),
        (None, {}, "got NoneType"),
        (["fine"], {"task_type": "summarise"}, "task_type must be one of"),
        (["fine"], {"input": ["other"]}, "embed\\(\\)'s inputs="),
        (["fine"], {"user": object()}, "cannot be sent as JSON"),
        (["fine"], {"dimensions": 0}, "positive int"),
        (
            ["fine"],
            {"model_chain": ["openai/text-embedding-3-small", "gemini/text-embedding-004"]},
            "mix",
        ),
        (["fine"], {"model_chain": ["groq/text-embedding-3-small"]}, None),
    ],
)
async def test_bad_inputs_are_refused_before_any_call(
    sim: Simulator, inputs: Any, options: dict[str, Any], complaint: str | None
) -> None:
    async with client_for(sim, ["openai/text-embedding-3-small"]) as client:
        with pytest.raises(ConfigError, match=complaint or "groq"):
            await client.embed(inputs, **options)
    assert sim.requests == []
