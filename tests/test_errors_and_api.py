from __future__ import annotations

import gc
import inspect
import weakref

import failover
from failover import AllAttemptsFailed, Attempt, NoProfileAvailable, ProviderError, RateLimitError
from failover._secrets import KeyScrubber

KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz123456"


def test_all_is_sorted_and_matches_the_public_names() -> None:
    assert failover.__all__ == sorted(failover.__all__)
    public = {name for name in dir(failover) if not name.startswith("_")}
    modules = {name for name in public if inspect.ismodule(getattr(failover, name, None))}
    assert set(failover.__all__) == public - modules - {"annotations", "TYPE_CHECKING", "Any"}
    for name in failover.__all__:
        assert getattr(failover, name) is not None


def test_provider_error_carries_context_and_never_a_key() -> None:
    error = RateLimitError(
        f"Incorrect API key provided: {KEY}",
        provider="openai",
        model="gpt-4o",
        profile="main",
        status=429,
        retry_after=3.0,
    )
    for text in (str(error), repr(error), error.message):
        assert KEY not in text and "3456" in text
    assert (error.provider, error.status, error.retry_after, error.kind) == (
        "openai",
        429,
        3.0,
        "rate_limit",
    )


def test_redact_removes_a_known_key_of_any_shape() -> None:
    error = ProviderError("key was plainkeywithoutprefix99 here")
    error.redact(KeyScrubber(["plainkeywithoutprefix99"]))
    assert "plainkeywithoutprefix99" not in str(error)


def test_all_attempts_failed_lists_every_attempt_and_retry_after() -> None:
    err = RateLimitError("slow down", status=429)
    attempts = [Attempt("openai/gpt-4o", "a", "rate_limit", 429, 5.0, 0.01, err)]
    error = AllAttemptsFailed("all failed", attempts, retry_after=5.0)
    assert error.attempts[0].error_kind == "rate_limit" and error.errors == (err,)
    assert "try again in 5.0s" in str(error) and "openai/gpt-4o via 'a'" in str(error)
    assert issubclass(NoProfileAvailable, AllAttemptsFailed)


def test_rate_limit_headroom_reads_requests_and_tokens_of_both_header_families() -> None:
    from failover.classify import rate_limit_headroom

    assert rate_limit_headroom({"content-type": "application/json"}) is None
    openai = rate_limit_headroom(
        {
            "x-ratelimit-remaining-requests": "12",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "6m0s",
        }
    )
    assert openai is not None
    assert (openai.requests_remaining, openai.tokens_remaining, openai.spent_for) == (12, 0, 360)
    anthropic = rate_limit_headroom(
        {
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": "garbage",
        }
    )
    assert anthropic is not None and anthropic.spent_for == 1.0  # unreadable reset: 1 s


def test_a_half_echoed_key_and_its_encoded_forms_are_scrubbed() -> None:
    key = "plainkeywithoutprefix0123456789abcdef"
    half = key[: len(key) // 2] + "****" + key[-4:]
    scrub = KeyScrubber([key])
    for echoed in (key, half, key.replace("0123", "%30123"), f"key={key!r}"):
        text = scrub(f"the key {echoed} is invalid")
        assert not any(key[i : i + 8] in text for i in range(len(key) - 7)), text


def test_a_keys_scrubber_is_made_once_and_let_go_with_the_key() -> None:
    """A failure scrubs its key's error text each time: the scrubber is kept for the key,
    and no longer than the key (a removed or rotated key is not held by a cache)."""
    from failover._secrets import SecretKey, _scrubbers, scrub

    key = SecretKey("plainkeywithoutprefix0123456789rotated")
    assert "withoutp" not in scrub("echoed: plainkeywithoutprefix0123456789rotated", key)
    assert key in _scrubbers
    scrubber = _scrubbers[key]
    assert scrub("again", key) == "again" and _scrubbers[key] is scrubber
    held = weakref.ref(key)
    del key, scrubber
    gc.collect()
    assert held() is None  # the cache did not keep the key
    assert "plainkeywithoutprefix0123456789rotated" not in [
        kept.get_secret_value() for kept in list(_scrubbers.keys())
    ]


def test_the_error_code_is_scrubbed_too() -> None:
    error = ProviderError("bad", code="invalid_key:plainkeywithoutprefix99")
    error.redact(KeyScrubber(["plainkeywithoutprefix99"]))
    assert "withoutp" not in (error.code or "")
