"""The SDK transport's chains (``SdkChains``): one kept per requested model, the same
tuple while the catalog's entries of its models stay, made again when one changes."""

from __future__ import annotations

from dataclasses import replace

from failover.catalog import ModelCatalog, ModelEntry
from failover.transport_chains import SdkChains

CLAUDE = ModelEntry(id="claude-x", name="claude-x", provider="anthropic", api="anthropic")


def _chains(catalog: ModelCatalog) -> SdkChains:
    return SdkChains("openai", "openai", ["gpt-4o-mini", CLAUDE], catalog)


def test_a_requested_models_chain_is_the_same_tuple_until_its_entries_change() -> None:
    catalog = ModelCatalog()
    chains = _chains(catalog)
    chain = chains.chain("gpt-4o")
    assert [(m.provider, m.id) for m in chain] == [
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-x"),
    ]
    assert chains.chain("gpt-4o") is chain  # kept: the engine reuses what it made of it
    assert chains.chain("gpt-4.1") is not chain  # another requested model, another chain
    assert len(chains) == 2


def test_a_chain_is_made_again_when_the_catalog_entry_of_one_of_its_models_changes() -> None:
    catalog = ModelCatalog()
    chains = _chains(catalog)
    before = chains.chain("gpt-4o")
    mini = catalog.get("openai", "gpt-4o-mini")
    assert mini is not None
    catalog.register(replace(mini, context_window=1234))  # a fallback's entry replaced
    after = chains.chain("gpt-4o")
    assert after is not before
    assert after[1].context_window == 1234
    assert chains.chain("gpt-4o") is after

    catalog.register(ModelEntry(id="gpt-4o", name="mine", provider="openai", api="openai"))
    renamed = chains.chain("gpt-4o")  # the requested model's own entry replaced
    assert renamed is not after
    assert renamed[0].name == "mine"


def test_a_model_the_catalog_does_not_know_is_made_up_and_kept() -> None:
    chains = _chains(ModelCatalog())
    chain = chains.chain("my-finetune")
    assert (chain[0].provider, chain[0].id, chain[0].api) == ("openai", "my-finetune", "openai")
    assert chains.chain("my-finetune") is chain
