"""SyncResilientClient: the async engine for sync callers, on a loop thread of its own.

Plain sync tests against the simulator, which runs on a thread of its own.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import openai
import pytest

import failover
from failover import (
    AuthProfile,
    ClientClosedError,
    ConfigError,
    FailoverEvent,
    FailoverManager,
    ResilientClient,
    StreamInterrupted,
    SyncResilientClient,
)
from failover.engine import AttemptContext
from failover.testing import Behavior, Simulator
from tests.conftest import FakeClock, simulator_in_thread

KEY_A = "sk-sync-client-key-a-0000000001"
KEY_B = "sk-sync-client-key-b-0000000002"
HI = [{"role": "user", "content": "hi"}]
MINI, FULL = "openai/gpt-4o-mini", "openai/gpt-4o"
PREFIX = "failover-sync-client"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with simulator_in_thread(keys={"openai": [KEY_A, KEY_B]}) as simulator:
        yield simulator


def manager_for(sim: Simulator) -> FailoverManager:
    url = sim.base_url("openai")
    return FailoverManager(
        clock=FakeClock(),  # cooldowns last until the test moves the clock
        profiles=[
            AuthProfile("openai-a", "openai", KEY_A, base_url=url),
            AuthProfile("openai-b", "openai", KEY_B, base_url=url),
        ],
    )


def client_for(sim: Simulator, **options: Any) -> SyncResilientClient:
    return SyncResilientClient([MINI, FULL], manager_for(sim), **options)


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(PREFIX) and t.is_alive()]


def eventually(condition: Any) -> bool:
    """Poll ``condition`` (for state another thread updates); never a timing assertion."""
    for _ in range(500):
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())


def test_it_is_exported_lazily_and_listed() -> None:
    assert "SyncResilientClient" in failover.__all__
    assert "ClientClosedError" in failover.__all__
    assert issubclass(ClientClosedError, ConfigError)


def test_complete_rotates_past_a_429_and_falls_over_a_503(sim: Simulator) -> None:
    sim.script(Behavior("rate_limit", retry_after=30), key=KEY_A)
    with client_for(sim) as client:
        reply = client.complete(HI)
        assert (reply.model, reply.profile) == (MINI, "openai-b")
        assert [(a.profile, a.status) for a in reply.attempts] == [
            ("openai-a", 429),
            ("openai-b", None),
        ]
        assert sim.calls(key=KEY_A) == 1

        sim.script("overloaded", model="gpt-4o-mini")
        reply = client.complete(HI)
        assert reply.model == FULL
        assert isinstance(reply, failover.Completion)
        assert sim.calls(key=KEY_A) == 1  # A is still cooling down


def test_stream_gives_the_chunks_after_a_rotation(sim: Simulator) -> None:
    sim.script(Behavior("rate_limit", retry_after=30), key=KEY_A)
    with client_for(sim) as client, client.stream(HI, max_tokens=50) as stream:
        chunks = list(stream)
        assert len(chunks) > 1
        assert stream.text == "".join(chunk.text for chunk in chunks)
        assert stream.profile == "openai-b" and stream.model == MINI
        assert stream.usage is not None and stream.finish_reason == "stop"
        assert len(stream.attempts) == 2
        assert list(stream) == []  # ended: stays ended


def test_stream_falls_over_a_503_to_the_next_model(sim: Simulator) -> None:
    sim.script("overloaded", model="gpt-4o-mini")
    with client_for(sim) as client:
        stream = client.stream(HI)
        text = "".join(chunk.text for chunk in stream)
        assert text and stream.model == FULL


def test_call_runs_a_sync_function_and_classifies_its_sdk_errors(sim: Simulator) -> None:
    sim.script(Behavior("rate_limit", retry_after=30), key=KEY_A)
    threads: list[str] = []

    def ask(ctx: AttemptContext) -> str:
        threads.append(threading.current_thread().name)
        with openai.OpenAI(api_key=ctx.api_key, base_url=ctx.base_url, max_retries=0) as sdk:
            reply = sdk.chat.completions.create(model=ctx.model.id, messages=HI)  # type: ignore[arg-type]
        return str(reply.choices[0].message.content)

    with client_for(sim) as client:
        assert client.call(ask)
        assert sim.calls(key=KEY_A) == 1 and sim.calls(key=KEY_B) == 1
        assert client.manager.get_profile("openai-a").cooldown_until is not None  # type: ignore[attr-defined]

        sim.script("overloaded", model="gpt-4o-mini")
        assert client.call(ask)
        assert [r.model for r in sim.requests][-1] == "gpt-4o"
    assert threading.main_thread().name not in threads  # a worker thread ran it
    assert not any(name.startswith(PREFIX) for name in threads)  # not the loop itself


def test_call_refuses_a_coroutine_function(sim: Simulator) -> None:
    async def ask(ctx: AttemptContext) -> str:
        return ""

    with client_for(sim) as client, pytest.raises(ConfigError, match="sync function"):
        client.call(ask)  # type: ignore[arg-type]


def test_embed_rotates_past_a_429(sim: Simulator) -> None:
    sim.script(Behavior("rate_limit", retry_after=30), key=KEY_A)
    with client_for(sim) as client:
        result = client.embed(["a", "b"], model_chain=["openai/text-embedding-3-small"])
        assert len(result.vectors) == 2 and result.profile == "openai-b"
        assert sim.calls(key=KEY_A) == 1


def test_threads_sharing_one_client_are_served_together(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads, each = 8, 5
    sim.default = Behavior(latency=0.05)
    # the simulator holds the first requests until all threads have one in flight: if the
    # client served them one at a time, the meeting would never happen
    handle = sim._handle
    counts = {"now": 0, "most": 0}
    met = asyncio.Event()

    async def counting(*args: Any) -> Any:
        counts["now"] += 1
        counts["most"] = max(counts["most"], counts["now"])
        try:
            if counts["now"] >= threads:
                met.set()
            await asyncio.wait_for(met.wait(), 20)
            return await handle(*args)
        finally:
            counts["now"] -= 1

    monkeypatch.setattr(sim, "_handle", counting)
    replies: list[str] = []
    errors: list[BaseException] = []

    with client_for(sim) as client:

        def work() -> None:
            try:
                for _ in range(each):
                    replies.append(client.complete(HI).text)
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
    assert not errors
    assert len(replies) == threads * each
    assert counts["most"] == threads
    assert len(loop_threads()) == 0


def test_sync_and_async_hooks_fire_on_the_loop_thread(sim: Simulator) -> None:
    sim.script(Behavior("rate_limit", retry_after=30), key=KEY_A)
    seen: list[tuple[str, str]] = []
    client = client_for(sim)

    @client.on_failover
    def sync_hook(event: FailoverEvent) -> None:
        seen.append(("sync", threading.current_thread().name))

    @client.on_failover
    async def async_hook(event: FailoverEvent) -> None:
        await anyio.sleep(0.01)  # still running when the request returns
        seen.append(("async", threading.current_thread().name))

    with client:
        client.complete(HI)
    # close() waited for the async hook
    assert sorted(kind for kind, _ in seen) == ["async", "sync"]
    assert all(name.startswith(PREFIX) for _, name in seen)


def test_state_is_shared_with_an_async_client_on_the_same_manager(sim: Simulator) -> None:
    sim.script(Behavior("rate_limit", retry_after=30), key=KEY_A)
    manager = manager_for(sim)
    with SyncResilientClient([MINI], manager) as sync_client:
        assert sync_client.complete(HI).profile == "openai-b"
    assert sim.calls(key=KEY_A) == 1

    async def ask() -> str:
        async with ResilientClient([MINI], manager) as async_client:
            return (await async_client.complete(HI)).profile

    assert anyio.run(ask) == "openai-b"
    assert sim.calls(key=KEY_A) == 1  # the key the sync client found limited was skipped


def test_close_stops_the_thread_and_later_calls_raise_a_typed_error(sim: Simulator) -> None:
    client = client_for(sim)
    assert loop_threads() == []  # started lazily
    client.complete(HI)
    assert len(loop_threads()) == 1
    client.close()
    assert loop_threads() == []
    client.close()  # twice is fine
    with pytest.raises(ClientClosedError, match="closed"):
        client.complete(HI)
    with pytest.raises(ClientClosedError):
        client.stream(HI)
    with pytest.raises(ClientClosedError):
        client.embed("x")
    with pytest.raises(ClientClosedError):
        client.call(lambda ctx: None)
    assert loop_threads() == []
    assert client.status()["profiles"]  # status needs no thread


def test_close_before_any_call_starts_nothing(sim: Simulator) -> None:
    client = client_for(sim)
    client.close()
    assert loop_threads() == []
    with pytest.raises(ClientClosedError):
        client.complete(HI)


def test_context_manager_closes(sim: Simulator) -> None:
    with client_for(sim) as client:
        assert len(loop_threads()) == 1
        assert client.complete(HI).text
    assert loop_threads() == []
    with pytest.raises(ClientClosedError):
        client.complete(HI)


def test_close_ends_a_call_in_flight_with_the_typed_error(sim: Simulator) -> None:
    sim.script("hang", provider="openai")
    client = client_for(sim)
    outcome: list[BaseException] = []

    def work() -> None:
        try:
            client.complete(HI)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    assert eventually(lambda: sim.calls() == 1)
    client.close()
    worker.join(30)
    assert isinstance(outcome[0], ClientClosedError)
    assert loop_threads() == []


def _busy_connections(client: SyncResilientClient) -> list[Any]:
    http = client._async._owned_http
    assert http is not None
    pool = http._transport._pool  # type: ignore[attr-defined]
    return [c for c in pool.connections if not c.is_idle() and not c.is_closed()]


def test_breaking_out_of_a_stream_releases_it(sim: Simulator) -> None:
    sim.default = Behavior(reply=" ".join(["word"] * 200), tokens_per_second=200)
    with client_for(sim) as client:
        with client.stream(HI) as stream:
            for _chunk in stream:
                break
        assert stream._stream._finished
        assert client._streams == set()
        assert _busy_connections(client) == []
        assert list(stream) == []
        # an iterator dropped without ``with`` is released by close()
        left = client.stream(HI)
        next(left)
        assert _busy_connections(client)
    assert left._stream._finished


def test_a_stream_cut_midway_raises_stream_interrupted(sim: Simulator) -> None:
    sim.script("truncate", provider="openai")
    with client_for(sim) as client:
        stream = client.stream(HI)
        with pytest.raises(StreamInterrupted) as caught:
            for _ in stream:
                pass
        assert caught.value.partial_text == stream.text
        assert stream._stream._finished and client._streams == set()
        failed = [p for p in client.status()["profiles"] if p["failure_count"]]
        assert len(failed) == 1


def test_a_deadline_bounds_a_hanging_call(sim: Simulator) -> None:
    sim.script("hang", provider="openai")
    with client_for(sim, deadline=0.3) as client, pytest.raises(failover.FailoverError) as caught:
        client.complete(HI)
    assert "deadline" in str(caught.value)


def test_keyboard_interrupt_cancels_the_waiting_request(sim: Simulator) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("Ctrl-C reaches the main thread only")
    sim.script("hang", provider="openai")
    client = client_for(sim)
    waiting = threading.Event()  # set while the main thread waits in complete()

    def interrupt() -> None:  # a real SIGINT, as Ctrl-C sends, to the waiting main thread
        eventually(lambda: sim.calls() >= 1)  # the request waits on the upstream by then
        # sent even if it does not (a slow machine), and again while the wait goes on: the
        # test ends, failing if need be, and never hangs the run
        for _ in range(20):
            if not waiting.is_set():
                return
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
            time.sleep(1.0)

    # Python's own Ctrl-C handler, whatever an earlier test in this process left installed
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    waiting.set()
    threading.Thread(target=interrupt, daemon=True).start()

    def complete_waiting() -> None:
        try:
            client.complete(HI)
        finally:
            waiting.clear()

    try:
        with pytest.raises(KeyboardInterrupt):
            complete_waiting()
        # the request was cancelled on the loop, not left hanging
        assert eventually(lambda: not client._loop._scopes)
        sim.script(None, provider="openai")
        assert client.complete(HI).text  # the client still works
    finally:
        signal.signal(signal.SIGINT, previous)
        client.close()


def test_repr_and_errors_never_show_a_key(sim: Simulator) -> None:
    sim.script("invalid_key", provider="openai")
    client = client_for(sim)
    try:
        with pytest.raises(failover.FailoverError) as caught:
            client.complete(HI)
        for text in (repr(client), str(caught.value), repr(caught.value), str(client.status())):
            assert KEY_A not in text and KEY_B not in text
        assert repr(client) == f"SyncResilientClient(chain={[MINI, FULL]!r}, profiles=2)"
    finally:
        client.close()


def test_a_hook_calling_its_own_client_is_refused_not_deadlocked(sim: Simulator) -> None:
    sim.script(Behavior("rate_limit", retry_after=30), key=KEY_A)
    refused: list[BaseException] = []
    client = client_for(sim)

    @client.on_failover
    def hook(event: FailoverEvent) -> None:
        for blocking in (lambda: client.complete(HI), client.close):
            try:
                blocking()
            except ConfigError as exc:
                refused.append(exc)

    with client:
        assert client.complete(HI).profile == "openai-b"
    assert len(refused) == 2 and all("own event loop thread" in str(e) for e in refused)


def test_close_ends_a_stream_being_read_in_another_thread(sim: Simulator) -> None:
    sim.default = Behavior(reply=" ".join(["word"] * 400), tokens_per_second=20)
    client = client_for(sim)
    stream = client.stream(HI)
    first = threading.Event()
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            for _ in stream:
                first.set()
        except BaseException as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    assert first.wait(30)
    client.close()
    reader.join(30)
    assert isinstance(outcome[0], ClientClosedError)
    assert stream._stream._finished
    assert loop_threads() == []
