"""Google Vertex AI: Claude through rawPredict and Gemini through generateContent (golden
requests from the documented shapes), base URLs per project and location, Google access
tokens refreshed before they expire (in a worker thread), and Vertex's errors."""

from __future__ import annotations

import datetime
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import google.auth.credentials
import pytest

from failover import AuthProfile, FailoverManager, ResilientClient
from failover.errors import AuthenticationError, ConfigError, FailoverError, RateLimitError
from failover.providers import get_adapter
from failover.providers.base import ChatRequest
from failover.providers.vertex import vertex_base_url
from failover.testing import Behavior, Simulator

CLAUDE = "claude-sonnet-4-5@20250929"
BASE = "https://us-east5-aiplatform.googleapis.com/v1/projects/my-project/locations/us-east5"
TOKEN = "ya29.c.b0AXv0zTOKENEXAMPLE000000000000000000"


def test_claude_on_vertex_is_anthropics_body_without_model_with_vertex_version() -> None:
    request = ChatRequest(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hey Claude!"}],
        max_tokens=256,
        params={"stop": ["END"]},
    )
    built = get_adapter("vertex_anthropic").build_request(
        request, model=CLAUDE, api_key=TOKEN, base_url=BASE
    )
    assert built.url == f"{BASE}/publishers/anthropic/models/{CLAUDE}:rawPredict"
    assert built.headers == {
        "content-type": "application/json",
        "authorization": f"Bearer {TOKEN}",
    }
    assert json.loads(built.body) == {
        "anthropic_version": "vertex-2023-10-16",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hey Claude!"}]}],
        "system": [{"type": "text", "text": "Be brief."}],
        "max_tokens": 256,
        "stop_sequences": ["END"],
    }
    streamed = get_adapter("vertex_anthropic").build_request(
        ChatRequest([{"role": "user", "content": "hi"}], stream=True),
        model=CLAUDE,
        api_key=TOKEN,
        base_url=BASE,
    )
    assert streamed.url.endswith(f"/models/{CLAUDE}:streamRawPredict")
    assert json.loads(streamed.body)["stream"] is True


def test_gemini_on_vertex_is_the_gemini_body_on_the_publishers_path() -> None:
    request = ChatRequest([{"role": "user", "content": "hi"}], max_tokens=20)
    adapter = get_adapter("vertex_gemini")
    built = adapter.build_request(request, model="gemini-2.5-flash", api_key=TOKEN, base_url=BASE)
    assert built.url == f"{BASE}/publishers/google/models/gemini-2.5-flash:generateContent"
    assert built.headers["authorization"] == f"Bearer {TOKEN}"
    assert "x-goog-api-key" not in built.headers
    assert json.loads(built.body) == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"maxOutputTokens": 20},
    }
    streamed = adapter.build_request(
        ChatRequest([{"role": "user", "content": "hi"}], stream=True),
        model="gemini-2.5-flash",
        api_key=TOKEN,
        base_url=BASE,
    )
    assert streamed.url.endswith(":streamGenerateContent?alt=sse")


def test_the_base_url_names_project_and_location_and_global_has_its_own_host() -> None:
    assert vertex_base_url(region="europe-west1", project="p-123") == (
        "https://europe-west1-aiplatform.googleapis.com/v1/projects/p-123/locations/europe-west1"
    )
    assert vertex_base_url(region="global", project="p-123") == (
        "https://aiplatform.googleapis.com/v1/projects/p-123/locations/global"
    )
    profile = AuthProfile("gcp", "vertex_anthropic", "", project="p-123", region="us-east5")
    assert profile.base_url == (
        "https://us-east5-aiplatform.googleapis.com/v1/projects/p-123/locations/us-east5"
    )
    with pytest.raises(ConfigError, match="project"):
        AuthProfile("gcp", "vertex_gemini", "", region="us-east5")


def test_vertex_errors_read_as_their_wire_reads_them() -> None:
    google_429 = {
        "error": {
            "code": 429,
            "message": "Quota exceeded for aiplatform.googleapis.com/"
            "online_prediction_requests_per_base_model with base model: anthropic-claude.",
            "status": "RESOURCE_EXHAUSTED",
        }
    }
    error = get_adapter("vertex_anthropic").parse_error(429, {}, json.dumps(google_429).encode())
    assert isinstance(error, RateLimitError)
    unauthenticated = {"error": {"code": 401, "message": "bad", "status": "UNAUTHENTICATED"}}
    error = get_adapter("vertex_gemini").parse_error(401, {}, json.dumps(unauthenticated).encode())
    assert isinstance(error, AuthenticationError)


class ExpiringCredentials(google.auth.credentials.Credentials):  # type: ignore[misc]
    """google-auth credentials whose refresh mints a new token (and tells the simulator)."""

    def __init__(self, sim: Simulator, provider: str, lifetime: float) -> None:
        super().__init__()
        self.sim, self.provider, self.lifetime = sim, provider, lifetime
        self.refreshes: list[int] = []  # the thread of each refresh
        self.token = "ya29.stale-token-from-before"
        self.expiry = self._utcnow() + datetime.timedelta(seconds=30)

    @staticmethod
    def _utcnow() -> datetime.datetime:
        return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)

    def refresh(self, request: Any) -> None:
        self.refreshes.append(threading.get_ident())
        self.token = f"ya29.fresh-token-number-{len(self.refreshes)}"
        self.expiry = self._utcnow() + datetime.timedelta(seconds=self.lifetime)
        self.sim.add_key(self.provider, self.token)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    keys = {"vertex_anthropic": ["ya29.never-issued"], "vertex_gemini": ["ya29.never-issued"]}
    async with Simulator(keys=keys) as simulator:
        yield simulator


def vertex_manager(sim: Simulator, provider: str, **options: Any) -> FailoverManager:
    manager = FailoverManager()
    manager.add_profile(AuthProfile("gcp", provider, base_url=sim.base_url(provider), **options))
    return manager


@pytest.mark.parametrize(
    ("provider", "model"), [("vertex_anthropic", CLAUDE), ("vertex_gemini", "gemini-2.5-flash")]
)
async def test_a_token_is_refreshed_before_it_expires_mid_run(
    sim: Simulator, provider: str, model: str
) -> None:
    credentials = ExpiringCredentials(sim, provider, lifetime=3600)
    manager = vertex_manager(sim, provider, api_key="", credentials=credentials)
    async with ResilientClient([f"{provider}/{model}"], manager) as client:
        await client.complete([{"role": "user", "content": "one"}])  # 30 s left: refreshed
        await client.complete([{"role": "user", "content": "two"}])  # an hour left: kept
        credentials.expiry = credentials._utcnow() + datetime.timedelta(seconds=60)
        chunks = [c.text async for c in client.stream([{"role": "user", "content": "three"}])]
    assert "".join(chunks).startswith("Simulated answer")
    assert [r.key for r in sim.requests] == [
        "ya29.fresh-token-number-1",
        "ya29.fresh-token-number-1",
        "ya29.fresh-token-number-2",
    ]
    assert all(r.outcome == "healthy" for r in sim.requests)
    assert threading.get_ident() not in credentials.refreshes  # never on the event loop


async def test_a_refused_token_disables_the_profile_and_is_never_shown(sim: Simulator) -> None:
    token = "ya29.this-token-was-revoked-000000000000"
    manager = vertex_manager(sim, "vertex_anthropic", api_key=token)
    async with ResilientClient(
        [f"vertex_anthropic/{CLAUDE}"], manager, wait_for_recovery=False
    ) as client:
        with pytest.raises(FailoverError) as caught:
            await client.complete([{"role": "user", "content": "hi"}])
        status = json.dumps(client.status(), default=str)
    assert sim.requests[-1].outcome == "invalid_key"
    assert manager.get_profile("gcp").status.value == "disabled"  # type: ignore[union-attr]
    for shown in (str(caught.value), repr(caught.value), status, repr(manager.get_profile("gcp"))):
        assert "this-token-was-revoked" not in shown


async def test_a_failing_refresh_is_an_authentication_error_naming_no_secret(
    sim: Simulator,
) -> None:
    class Broken(ExpiringCredentials):
        def refresh(self, request: Any) -> None:
            raise google.auth.exceptions.RefreshError("invalid_grant: secret-grant-0000000")

    credentials = Broken(sim, "vertex_gemini", lifetime=0)
    manager = vertex_manager(sim, "vertex_gemini", api_key="", credentials=credentials)
    async with ResilientClient(
        ["vertex_gemini/gemini-2.5-flash"], manager, wait_for_recovery=False
    ) as client:
        with pytest.raises(FailoverError) as caught:
            await client.complete([{"role": "user", "content": "hi"}])
    assert "could not be refreshed" in str(caught.value.attempts[-1].error)  # type: ignore[attr-defined]
    assert "secret-grant" not in repr(caught.value)
    assert sim.requests == []  # nothing was sent without a token


async def test_a_missing_service_account_file_is_a_clear_error(
    sim: Simulator, tmp_path: Any
) -> None:
    manager = vertex_manager(
        sim, "vertex_gemini", api_key="", credentials=str(tmp_path / "missing.json")
    )
    async with ResilientClient(
        ["vertex_gemini/gemini-2.5-flash"], manager, wait_for_recovery=False
    ) as client:
        with pytest.raises(FailoverError) as caught:
            await client.complete([{"role": "user", "content": "hi"}])
    assert "no Google credentials" in str(caught.value.attempts[-1].error)  # type: ignore[attr-defined]


async def test_vertex_throttling_rotates_to_the_next_key(sim: Simulator) -> None:
    sim.add_key("vertex_anthropic", "ya29.first-token-000000000000")
    sim.add_key("vertex_anthropic", "ya29.second-token-00000000000")
    sim.script(Behavior("rate_limit"), key="ya29.first-token-000000000000")
    manager = vertex_manager(sim, "vertex_anthropic", api_key="ya29.first-token-000000000000")
    manager.add_profile(
        AuthProfile(
            "gcp2",
            "vertex_anthropic",
            "ya29.second-token-00000000000",
            base_url=sim.base_url("vertex_anthropic"),
        )
    )
    async with ResilientClient([f"vertex_anthropic/{CLAUDE}"], manager) as client:
        result = await client.complete([{"role": "user", "content": "hi"}])
    assert result.profile == "gcp2"
    assert manager.get_profile("gcp").status.value == "rate_limited"  # type: ignore[union-attr]


def test_vertex_gemini_refuses_embeddings_rather_than_send_them_to_ai_studios_wire() -> None:
    from failover.embeddings import EmbeddingChain

    with pytest.raises(ConfigError, match="no embeddings API"):
        EmbeddingChain.of(["vertex_gemini/gemini-embedding-001"])


class SlowCredentials:
    """google-auth-like credentials whose refresh takes ``delay`` seconds and gives a token
    that is already inside the refresh margin (so every use refreshes)."""

    def __init__(self, delay: float, lifetime: float = 0.0) -> None:
        self.token: str | None = None
        self.expiry: datetime.datetime | None = None
        self.delay = delay
        self.lifetime = lifetime
        self.refreshes = 0
        self.release = threading.Event()

    def refresh(self, request: Any) -> None:
        self.release.wait(self.delay)
        self.refreshes += 1
        self.token = f"ya29.slow-refresh-token-{self.refreshes:04d}"
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        self.expiry = now + datetime.timedelta(seconds=self.lifetime)


def test_a_refresh_shared_by_clients_on_two_event_loops_never_hangs() -> None:
    import anyio

    from failover.providers._google import GoogleTokens

    credentials = SlowCredentials(delay=0.05)
    profile = AuthProfile(
        "gcp", "vertex_gemini", "", project="p", region="us-central1", credentials=credentials
    )
    tokens = GoogleTokens()  # one adapter's tokens, shared by a sync and an async client
    outcomes: list[str] = []

    def client_on_its_own_loop() -> None:
        async def three_calls() -> None:
            with anyio.fail_after(20):
                for _ in range(3):
                    assert (await tokens.token_for(profile)).startswith("ya29.")

        try:
            anyio.run(three_calls)
            outcomes.append("ok")
        except BaseException as exc:  # a hang shows as TimeoutError; a loop clash otherwise
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=client_on_its_own_loop) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes == ["ok", "ok"]
    assert credentials.refreshes == 6


async def test_a_cancelled_caller_does_not_wait_for_the_refresh_whose_token_is_kept() -> None:
    import anyio

    from failover.providers._google import GoogleTokens

    credentials = SlowCredentials(delay=30, lifetime=3600)
    profile = AuthProfile(
        "gcp", "vertex_gemini", "", project="p", region="us-central1", credentials=credentials
    )
    tokens = GoogleTokens()
    with anyio.move_on_after(0.1) as scope:
        await tokens.token_for(profile)
    assert scope.cancelled_caught  # returned at the cancellation, the refresh still running
    assert credentials.refreshes == 0
    credentials.release.set()  # the token endpoint answers now
    with anyio.fail_after(10):
        token = await tokens.token_for(profile)
    assert token == "ya29.slow-refresh-token-0001"
    assert credentials.refreshes == 1  # the abandoned refresh's token, not a second refresh


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (lambda: google.auth.exceptions.TransportError("metadata server timed out"), "connection"),
        (lambda: TimeoutError("read timed out"), "connection"),
        (lambda: google.auth.exceptions.RefreshError("invalid_grant: bad"), "auth"),
    ],
)
async def test_an_unreachable_token_endpoint_goes_sideways_but_a_refused_grant_disables(
    failure: Any, expected: str
) -> None:
    from failover.errors import ProviderConnectionError
    from failover.policy import Action, decide
    from failover.providers._google import GoogleTokens

    class Failing(SlowCredentials):
        def refresh(self, request: Any) -> None:
            raise failure()

    profile = AuthProfile(
        "gcp", "vertex_gemini", "", project="p", region="us-central1", credentials=Failing(0)
    )
    with pytest.raises((AuthenticationError, ProviderConnectionError)) as caught:
        await GoogleTokens().token_for(profile)
    decision = decide(caught.value)
    if expected == "connection":
        assert isinstance(caught.value, ProviderConnectionError)
        assert decision.action is Action.RETRY and decision.failure == "error"  # not disabled
    else:
        assert isinstance(caught.value, AuthenticationError)
        assert decision.failure == "auth"
