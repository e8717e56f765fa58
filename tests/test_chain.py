from __future__ import annotations

import pytest

from failover import (
    DuplicateModel,
    FallbackChain,
    FallbackChainError,
    InvalidModelId,
    ModelCatalog,
    ModelEntry,
    ModelNotFound,
    ModelNotInChain,
)

IDS = ["openai/gpt-4o-mini", "gemini/gemini-2.5-flash-lite", "anthropic/claude-haiku-4-5"]


@pytest.fixture
def chain() -> FallbackChain:
    return FallbackChain.from_ids(IDS)


def test_from_ids_keeps_order_and_names(chain: FallbackChain) -> None:
    assert list(chain.names) == IDS
    assert [m.provider for m in chain] == ["openai", "gemini", "anthropic"]
    assert len(chain) == 3 and not chain.is_empty()


def test_next_walks_the_chain_and_returns_none_after_the_last(chain: FallbackChain) -> None:
    assert chain.next(IDS[0]).key == IDS[1]
    assert chain.next(IDS[1]).key == IDS[2]
    assert chain.next(IDS[2]) is None


def test_next_about_a_model_not_in_the_chain_is_a_lookup_error(chain: FallbackChain) -> None:
    with pytest.raises(ModelNotInChain) as info:
        chain.next("openai/gpt-4o")
    assert isinstance(info.value, LookupError)
    assert isinstance(info.value, FallbackChainError)


def test_index_of_contains_and_in(chain: FallbackChain) -> None:
    assert chain.index_of(IDS[2]) == 2
    assert chain.index_of("x/y") is None
    assert chain.contains(IDS[0]) and IDS[1] in chain
    assert not chain.contains("openai/gpt-4o") and "nope" not in chain


def test_first_last_and_empty_chain(chain: FallbackChain) -> None:
    assert chain.first().key == IDS[0] and chain.last().key == IDS[2]
    empty = FallbackChain()
    assert empty.is_empty() and empty.first() is None and empty.last() is None


def test_from_inclusive_and_from_after(chain: FallbackChain) -> None:
    assert list(chain.from_inclusive(IDS[1]).names) == IDS[1:]
    assert list(chain.from_after(IDS[1]).names) == IDS[2:]
    assert chain.from_after(IDS[2]) is None
    assert chain.from_inclusive("x/y") is None and chain.from_after("x/y") is None


def test_equality_and_models(chain: FallbackChain) -> None:
    assert chain == FallbackChain.from_ids(IDS)
    assert chain != FallbackChain.from_ids(IDS[:2])
    assert FallbackChain(chain.models) == chain


def test_invalid_id_is_rejected_with_its_name() -> None:
    with pytest.raises(InvalidModelId, match="gpt-4o"):
        FallbackChain.from_ids(["gpt-4o"])
    with pytest.raises(InvalidModelId):
        FallbackChain.from_ids("openai/gpt-4o")  # a str, not a list


def test_unknown_model_is_model_not_found_when_strict() -> None:
    with pytest.raises(ModelNotFound, match="openai/no-such-model"):
        FallbackChain.from_ids(["openai/no-such-model"], strict=True)


def test_id_is_split_at_the_first_slash() -> None:
    chain = FallbackChain.from_ids(["groq/openai/gpt-oss-20b"])
    assert chain.first().provider == "groq" and chain.first().id == "openai/gpt-oss-20b"


def test_duplicate_model_is_a_clear_error() -> None:
    with pytest.raises(DuplicateModel, match="openai/gpt-4o-mini"):
        FallbackChain.from_ids(["openai/gpt-4o-mini", "openai/gpt-4o-mini"])


def test_default_chain_spans_providers_and_exists_in_the_catalog() -> None:
    chain = FallbackChain.default()
    assert len({m.provider for m in chain}) >= 3
    assert all(m.cost_input is not None and m.context_window for m in chain)


def test_custom_catalog_entries_and_local_models() -> None:
    catalog = ModelCatalog()
    catalog.register(ModelEntry(id="my-ft", name="mine", provider="openai", api="openai"))
    chain = FallbackChain.from_ids(["openai/my-ft", "ollama/llama3.2:3b"], catalog=catalog)
    assert [m.id for m in chain] == ["my-ft", "llama3.2:3b"]


def test_lookups_accept_the_same_provider_aliases_as_from_ids() -> None:
    chain = FallbackChain.from_ids(["google/gemini-2.0-flash", "openai/gpt-4o-mini"])
    assert chain.contains("google/gemini-2.0-flash") and "google/gemini-2.0-flash" in chain
    assert chain.index_of("google/gemini-2.0-flash") == 0
    assert chain.next("google/gemini-2.0-flash").key == "openai/gpt-4o-mini"
    assert list(chain.from_after("Google/gemini-2.0-flash").names) == ["openai/gpt-4o-mini"]
