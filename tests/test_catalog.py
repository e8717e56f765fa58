from __future__ import annotations

import subprocess
import sys

import pytest

from failover import ModelCatalog, ModelEntry, TokenUsage, get_model_entry


def test_prices_and_context_window_come_from_genai_prices() -> None:
    entry = get_model_entry("openai", "gpt-4o-mini")
    assert entry is not None
    assert entry.cost_input == pytest.approx(0.15) and entry.cost_output == pytest.approx(0.6)
    assert entry.context_window == 128_000 and entry.api == "openai"


def test_gemini_maps_to_google_prices_and_google_is_an_alias() -> None:
    entry = get_model_entry("google", "gemini-2.5-flash-lite")
    assert entry is not None and entry.provider == "gemini" and entry.cost_input is not None


def test_dated_alias_resolves_but_keeps_the_id_sent_to_the_provider() -> None:
    entry = get_model_entry("openai", "gpt-4o-mini-2024-07-18")
    assert entry is not None and entry.id == "gpt-4o-mini-2024-07-18"
    assert entry.context_window == 128_000


def test_unknown_model_of_a_priced_provider_is_none() -> None:
    assert get_model_entry("openai", "definitely-not-a-model") is None
    assert get_model_entry("nosuchprovider", "x") is None


def test_local_providers_accept_any_model_with_unknown_prices() -> None:
    entry = get_model_entry("vllm", "my/finetune")
    assert entry is not None and entry.cost_input is None
    assert entry.calculate_cost(TokenUsage(10, 10)) is None


def test_calculate_cost_uses_prices_per_million_tokens() -> None:
    entry = ModelEntry(
        id="m", name="m", provider="p", api="openai", cost_input=2.0, cost_output=8.0
    )
    assert entry.calculate_cost(TokenUsage(1_000_000, 500_000)) == pytest.approx(6.0)
    assert entry.calculate_cost(TokenUsage(0, 0)) == 0.0
    # no cache price in the entry: cached reads are priced as input, never left unpriced
    assert entry.calculate_cost(TokenUsage(10, 0, cache_read_tokens=5)) == pytest.approx(3e-5)


def test_registered_provider_and_custom_entry() -> None:
    catalog = ModelCatalog()
    catalog.register_provider("mylab", api="openai")
    assert catalog.get("mylab", "anything") is not None
    catalog.register(
        ModelEntry(id="big", name="Big", provider="mylab", api="openai", context_window=1_000_000)
    )
    assert catalog.get("mylab", "big").context_window == 1_000_000


def test_import_failover_does_not_load_genai_prices_httpx_or_asyncio() -> None:
    code = (
        "import sys, failover; "
        "print(*(name in sys.modules for name in ('genai_prices', 'httpx', 'asyncio')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]
