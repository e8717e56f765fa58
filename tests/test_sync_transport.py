"""ResilientTransport inside sync SDK clients (httpx.Client, httpx2.Client).

The sync path runs the same async engine on a thread the transport owns; these tests use
the real sync openai and groq SDKs against the embedded simulator.
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import groq
import httpx
import httpx2
import openai
import pytest

from failover import (
    AuthProfile,
    ConfigError,
    FailoverManager,
    ProfileStatus,
    ResilientClient,
    ResilientTransport,
)
from failover.testing import Behavior, Simulator
from tests.conftest import FakeClock, simulator_in_thread

OPENAI_A = "sk-openai-sync-key-a-00000001"
OPENAI_B = "sk-openai-sync-key-b-00000002"
GROQ_A = "gsk_groqsynckeya000000000003"
GROQ_B = "gsk_groqsynckeyb000000000004"
ALL_KEYS = (OPENAI_A, OPENAI_B, GROQ_A, GROQ_B)
HI = [{"role": "user", "content": "hi"}]
MODEL = "gpt-4o-mini"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    keys = {"openai": [OPENAI_A, OPENAI_B], "groq": [GROQ_A, GROQ_B]}
    with simulator_in_thread(keys=keys) as simulator:
        yield simulator


def openai_manager(sim: Simulator, clock: FakeClock | None = None) -> FailoverManager:
    url = sim.base_url("openai")
    return FailoverManager(
        clock=clock or FakeClock(),
        profiles=[
            AuthProfile("openai-a", "openai", OPENAI_A, base_url=url),
            AuthProfile("openai-b", "openai", OPENAI_B, base_url=url),
        ],
    )


def openai_sdk(sim: Simulator, http: httpx2.Client) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="sdk-key-is-replaced",
        base_url=sim.base_url("openai"),
        max_retries=0,
        http_client=http,
    )


def ask(sdk: openai.OpenAI) -> str:
    reply = sdk.chat.completions.create(model=MODEL, messages=HI)  # type: ignore[arg-type]
    return str(reply.choices[0].message.content)


def transport_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("failover-") and t.is_alive()]


def test_openai_sync_sdk_429_rotates_inside_one_call_and_skips_the_cooling_key(
    sim: Simulator, clock: FakeClock
) -> None:
    sim.script(Behavior("rate_limit", retry_after=30), key=OPENAI_A)
    transport = ResilientTransport(openai_manager(sim, clock), provider="openai")
    with httpx2.Client(transport=transport) as http:
        sdk = openai_sdk(sim, http)
        for _ in range(3):
            assert ask(sdk).startswith("Simulated answer")
        assert sim.calls(key=OPENAI_A) == 1 and sim.calls(key=OPENAI_B) == 3
        assert transport.manager.get_profile("openai-a").status is ProfileStatus.RATE_LIMITED
        clock.advance(31)
        ask(sdk)
        ask(sdk)
    assert sim.calls(key=OPENAI_A) == 2
    assert sim.calls(key="sdk-key-is-replaced") == 0


def test_groq_sync_sdk_call_succeeds_when_its_first_key_gets_503(sim: Simulator) -> None:
    base = f"{sim.root_url}/groq"  # the groq SDK takes the bare host
    sim.script("overloaded", key=GROQ_A)
    profiles = [
        AuthProfile("groq-a", "groq", GROQ_A, base_url=base),
        AuthProfile("groq-b", "groq", GROQ_B, base_url=base),
    ]
    transport = ResilientTransport(profiles, provider="groq")
    with httpx.Client(transport=transport) as http:
        sdk = groq.Groq(api_key="replaced", base_url=base, max_retries=0, http_client=http)
        reply = sdk.chat.completions.create(model="llama-3.1-8b-instant", messages=HI)  # type: ignore[arg-type]
        assert str(reply.choices[0].message.content).startswith("Simulated answer")
        assert sim.calls(key=GROQ_A) == 1 and sim.calls(key=GROQ_B) == 1
        stream = sdk.chat.completions.create(
            model="llama-3.1-8b-instant",
            messages=HI,  # type: ignore[arg-type]
            stream=True,
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert sim.calls(key=GROQ_B) == 2  # A was overloaded again, B served the stream


def test_overloaded_model_falls_over_to_the_fallback_model(sim: Simulator) -> None:
    sim.script("overloaded", model=MODEL)
    transport = ResilientTransport(
        openai_manager(sim), provider="openai", fallback_models=["gpt-4o"]
    )
    with httpx2.Client(transport=transport) as http:
        assert "openai/gpt-4o:" in ask(openai_sdk(sim, http))
    assert [r.model for r in sim.requests][-1] == "gpt-4o"


def test_a_dead_key_is_disabled(sim: Simulator) -> None:
    sim.script("invalid_key", key=OPENAI_A)
    transport = ResilientTransport(openai_manager(sim), provider="openai")
    with httpx2.Client(transport=transport) as http:
        sdk = openai_sdk(sim, http)
        for _ in range(3):
            ask(sdk)
    assert transport.manager.get_profile("openai-a").status is ProfileStatus.DISABLED
    assert sim.calls(key=OPENAI_A) == 1 and sim.calls(key=OPENAI_B) == 3


def test_a_stream_passes_through_after_a_rotation(sim: Simulator) -> None:
    sim.script("rate_limit", key=OPENAI_A)
    transport = ResilientTransport(openai_manager(sim), provider="openai")
    with httpx2.Client(transport=transport) as http:
        stream = openai_sdk(sim, http).chat.completions.create(
            model=MODEL,
            messages=HI,  # type: ignore[arg-type]
            stream=True,
        )
        chunks = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert len(chunks) > 1 and "".join(chunks).startswith("Simulated answer")
    assert sim.calls(key=OPENAI_B) == 1


def test_a_truncated_stream_raises_and_counts_against_its_key(sim: Simulator) -> None:
    sim.script("truncate", provider="openai")
    transport = ResilientTransport(openai_manager(sim), provider="openai")
    with httpx2.Client(transport=transport) as http:
        stream = openai_sdk(sim, http).chat.completions.create(
            model=MODEL,
            messages=HI,  # type: ignore[arg-type]
            stream=True,
        )
        with pytest.raises((openai.APIConnectionError, httpx2.RemoteProtocolError)) as caught:
            for _ in stream:
                pass
    error = caught.value
    cause = error.__cause__ if isinstance(error, openai.APIConnectionError) else error
    assert "terminator" in str(cause)
    failed = [p for p in transport.status()["profiles"] if p["failure_count"]]
    assert len(failed) == 1


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_state_is_shared_with_an_async_client_on_the_same_manager(
    sim: Simulator, clock: FakeClock
) -> None:
    """Also a sync call made from a thread that runs an event loop (this test's)."""
    sim.script(Behavior("rate_limit", retry_after=30), key=OPENAI_A)
    manager = openai_manager(sim, clock)
    client = ResilientClient([f"openai/{MODEL}"], manager)
    transport = ResilientTransport(manager, provider="openai")
    with httpx2.Client(transport=transport) as http:
        ask(openai_sdk(sim, http))  # the sync call cools A
    assert (await client.complete(HI)).profile == "openai-b"  # the async client skips A
    assert sim.calls(key=OPENAI_A) == 1

    clock.advance(31)  # A is back (at the end of the rotation)
    sim.script(None, key=OPENAI_A)
    sim.script("invalid_key", key=OPENAI_B)
    assert (await client.complete(HI)).profile == "openai-a"  # the async client finds B dead...
    assert sim.calls(key=OPENAI_B) == 3
    with httpx2.Client(transport=transport) as http:
        for _ in range(2):
            ask(openai_sdk(sim, http))  # ...and the sync calls never try it again
    assert sim.calls(key=OPENAI_B) == 3 and sim.calls(key=OPENAI_A) == 4
    await client.aclose()


class MeetingTransport(httpx2.HTTPTransport):
    """Sends the first ``parties`` requests only once all of them are in flight together."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=30)
        self.arrivals = itertools.count()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        if next(self.arrivals) < self.barrier.parties:
            self.barrier.wait()  # broken (an error) if the calls were made one at a time
        return super().handle_request(request)


def test_threads_calling_at_once_are_served_together(sim: Simulator) -> None:
    sim.script(Behavior("rate_limit", retry_after=30), key=OPENAI_A)
    threads, calls_each = 6, 3
    transport = ResilientTransport(
        openai_manager(sim), provider="openai", inner=MeetingTransport(threads)
    )
    replies: list[str] = []
    errors: list[BaseException] = []

    def work(sdk: openai.OpenAI) -> None:
        try:
            for _ in range(calls_each):
                replies.append(ask(sdk))
        except BaseException as exc:
            errors.append(exc)

    with httpx2.Client(transport=transport) as http:
        sdk = openai_sdk(sim, http)
        workers = [threading.Thread(target=work, args=(sdk,)) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
    assert not errors, errors
    assert len(replies) == threads * calls_each
    assert all(reply.startswith("Simulated answer") for reply in replies)
    assert sim.calls(key=OPENAI_B) == threads * calls_each  # every call ends on B
    assert 1 <= sim.calls(key=OPENAI_A) <= threads  # A only before its first 429 came back
    assert transport.manager.get_profile("openai-a").status is ProfileStatus.RATE_LIMITED


def test_hooks_of_sync_calls_are_delivered_and_drained_on_close(sim: Simulator) -> None:
    sim.script("rate_limit", key=OPENAI_A)
    transport = ResilientTransport(openai_manager(sim), provider="openai")
    rotations: list[str] = []
    successes: list[str] = []

    @transport.on_failover
    async def slow_hook(event: Any) -> None:
        await anyio.sleep(0.2)  # still running when the call returns
        rotations.append(f"{event.from_profile}->{event.to_profile}")

    transport.on_success(lambda event: successes.append(event.profile))
    with httpx2.Client(transport=transport) as http:
        ask(openai_sdk(sim, http))
        assert successes == ["openai-b"]  # sync hooks run before the call returns
    assert rotations == ["openai-a->openai-b"]  # close() waited for the async hook
    assert not transport_threads()


def test_close_stops_the_thread_and_a_later_call_starts_it_again(sim: Simulator) -> None:
    transport = ResilientTransport(openai_manager(sim), provider="openai")
    assert not transport_threads()  # nothing starts before a sync call
    with httpx2.Client(transport=transport) as http:
        ask(openai_sdk(sim, http))
        assert len(transport_threads()) == 1
    assert not transport_threads()
    with httpx2.Client(transport=transport) as http:
        assert ask(openai_sdk(sim, http)).startswith("Simulated answer")
    assert not transport_threads()


async def test_aclose_also_stops_what_sync_clients_used(sim: Simulator) -> None:
    transport = ResilientTransport(openai_manager(sim), provider="openai")
    ask(openai_sdk(sim, httpx2.Client(transport=transport)))
    async with httpx2.AsyncClient(transport=transport) as http:
        reply = await openai.AsyncOpenAI(
            api_key="x", base_url=sim.base_url("openai"), max_retries=0, http_client=http
        ).chat.completions.create(model=MODEL, messages=HI)  # type: ignore[arg-type]
    assert str(reply.choices[0].message.content).startswith("Simulated answer")
    assert not transport_threads()  # the async client's aclose() closed the sync side too


def test_a_deadline_cuts_a_hanging_sync_call_short(sim: Simulator) -> None:
    sim.script("hang", key=OPENAI_A)
    sim.script("hang", key=OPENAI_B)
    transport = ResilientTransport(openai_manager(sim), provider="openai", deadline=0.5)
    outcome: list[BaseException] = []

    def call() -> None:
        with httpx2.Client(transport=transport) as http:
            sdk = openai.OpenAI(
                api_key="x",
                base_url=sim.base_url("openai"),
                max_retries=0,
                timeout=3600,
                http_client=http,
            )
            try:
                ask(sdk)
            except openai.APIError as exc:
                outcome.append(exc)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(60)  # without the deadline the call would hang for an hour
    assert not worker.is_alive()
    assert isinstance(outcome[0], openai.RateLimitError)
    assert "deadline" in str(outcome[0])


def test_no_key_in_logs_exceptions_events_or_status(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim.script("invalid_key", key=OPENAI_A)
    sim.script("rate_limit", key=OPENAI_B)
    # exhausted at once: this test reads what failing leaves
    transport = ResilientTransport(openai_manager(sim), provider="openai", wait_for_recovery=False)
    events: list[Any] = []
    for register in (transport.on_failover, transport.on_cooldown, transport.on_exhausted):
        register(events.append)
    with (
        caplog.at_level(logging.DEBUG),
        httpx2.Client(transport=transport) as http,
        pytest.raises(openai.RateLimitError) as caught,
    ):
        ask(openai_sdk(sim, http))
    error = caught.value
    text = "".join(
        [
            caplog.text,
            repr(events),
            json.dumps(transport.status()),
            repr(transport),
            str(error),
            repr(error.body),
            error.response.text,
            str(error.response.headers),
        ]
    )
    assert events and all(key not in text for key in ALL_KEYS)


def test_key_never_leaves_for_another_host_even_on_redirect() -> None:
    sent: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.url.host == "api.example.test":
            return httpx.Response(302, headers={"location": "https://evil.test/steal"})
        return httpx.Response(200, json={"ok": True})

    profiles = [AuthProfile("a", "openai", OPENAI_A, base_url="https://api.example.test/v1")]
    transport = ResilientTransport(profiles, provider="openai", inner=httpx.MockTransport(upstream))
    with httpx.Client(transport=transport, follow_redirects=True) as http:
        reply = http.post(
            "https://api.example.test/v1/chat/completions",
            json={"model": MODEL},
            headers={"authorization": "Bearer sdk"},
        )
    assert reply.status_code == 200
    assert [r.url.host for r in sent] == ["api.example.test", "evil.test"]
    assert sent[0].headers["authorization"] == f"Bearer {OPENAI_A}"
    assert "authorization" not in sent[1].headers


def test_an_async_only_inner_transport_in_a_sync_client_is_named() -> None:
    profiles = [AuthProfile("a", "openai", OPENAI_A)]
    transport = ResilientTransport(profiles, provider="openai", inner=httpx.AsyncHTTPTransport())
    with (
        httpx.Client(transport=transport) as http,
        pytest.raises(ConfigError, match=r"async only.*httpx\.HTTPTransport"),
    ):
        http.post("https://api.openai.com/v1/chat/completions", json={"model": MODEL})
    with pytest.raises(ConfigError, match="inner must be an httpx or httpx2 transport"):
        ResilientTransport(profiles, provider="openai", inner=object())  # type: ignore[arg-type]


def test_the_manager_stays_consistent_under_threads() -> None:
    """Sync transports and async clients use one manager from several threads at once."""
    manager = FailoverManager(
        profiles=[AuthProfile(f"k{i}", "openai", f"sk-thread-key-{i:010d}") for i in range(4)]
    )
    rounds, workers = 2000, 3  # fewer workers than keys: one is always ready
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    errors: list[BaseException] = []

    def work(number: int) -> None:
        try:
            for i in range(rounds):
                profile = manager.get_next_profile("openai", model=MODEL)
                assert profile is not None
                if (i + number) % 50 == 0:
                    manager.mark_failure(profile.name, "slow", kind="rate_limit", retry_after=0)
                    manager.enable(profile.name)
                else:
                    manager.mark_success(profile.name, model=MODEL)
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        sys.setswitchinterval(switch)
    assert not errors, errors
    status = manager.status()
    assert status.available_profiles == 4
    assert (
        sum(p.success_count for p in status.profiles)
        + sum(p.failure_count for p in status.profiles)
        == rounds * workers
    )
    picked = {manager.get_next_profile("openai").name for _ in range(4)}  # type: ignore[union-attr]
    assert picked == {"k0", "k1", "k2", "k3"}  # every key is back in rotation, once
