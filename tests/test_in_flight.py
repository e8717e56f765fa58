"""In-flight caps: a profile or a deployment never has more requests out than its cap, and a
request that ends in any way (reply, error, cancellation) gives its place back."""

from __future__ import annotations

import sys
import threading

import anyio
import anyio.lowlevel
import pytest

from failover.in_flight import InFlight, Slot
from tests.conftest import BOTH_BACKENDS

anyio_backend = BOTH_BACKENDS


def test_a_full_profile_cap_refuses_and_takes_nothing() -> None:
    caps = InFlight()
    first = caps.enter("a", 2, "openai/gpt-4o", None)
    second = caps.enter("a", 2, "openai/gpt-4o", None)
    assert first is not None and second is not None
    assert caps.enter("a", 2, "openai/gpt-4o", None) is None
    assert caps.count("a") == 2 and caps.count("openai/gpt-4o") == 2
    assert caps.enter("b", 2, "openai/gpt-4o", None) is not None  # another key
    first.leave()
    assert caps.enter("a", 2, "openai/gpt-4o", None) is not None


def test_a_full_deployment_cap_refuses_every_key_and_counts_nothing_on_the_profile() -> None:
    caps = InFlight()
    assert caps.enter("a", None, "azure/gpt-4o@eastus", 1) is not None
    assert caps.enter("b", 5, "azure/gpt-4o@eastus", 1) is None
    assert caps.count("b") == 0  # refused: nothing taken on the profile either
    assert caps.enter("b", 5, "azure/gpt-4o@westus", 1) is not None
    assert caps.counts() == {
        "profiles": {"a": 1, "b": 1},
        "deployments": {"azure/gpt-4o@eastus": 1, "azure/gpt-4o@westus": 1},
    }


def test_without_caps_requests_are_still_counted() -> None:
    caps = InFlight()
    slots = [caps.enter("a", None, "d", None) for _ in range(100)]
    assert all(slot is not None for slot in slots)
    assert caps.count("a") == 100


def test_leaving_twice_gives_back_one_place_and_idle_names_are_forgotten() -> None:
    caps = InFlight()
    slot = caps.enter("a", 1, "d", 1)
    other = caps.enter("b", None, "e", None)
    assert slot is not None and other is not None and slot.held
    slot.leave()
    slot.leave()
    assert not slot.held
    assert caps.count("a") == 0 and caps.count("d") == 0
    assert caps.counts() == {"profiles": {"b": 1}, "deployments": {"e": 1}}
    assert caps.enter("a", 1, "d", 1) is not None
    assert caps.enter("a", 1, "d", 1) is None  # the second leave did not free another place


def test_a_slot_used_as_a_context_manager_leaves_on_error() -> None:
    caps = InFlight()
    slot = caps.enter("a", 1, "d", None)
    assert slot is not None
    with pytest.raises(RuntimeError), slot:
        raise RuntimeError("the attempt failed")
    assert caps.count("a") == 0


@pytest.mark.parametrize("cap", [0, -1, 1.5, True, "2"])
def test_a_cap_must_be_a_whole_number_of_one_or_more(cap: object) -> None:
    caps = InFlight()
    with pytest.raises(ValueError, match="cap"):
        caps.enter("a", cap, "d", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cap"):
        caps.enter("a", None, "d", cap)  # type: ignore[arg-type]
    assert caps.counts() == {"profiles": {}, "deployments": {}}


async def test_cancelled_requests_never_keep_their_places() -> None:
    caps = InFlight()
    entered = 0

    async def request(number: int) -> None:
        nonlocal entered
        slot = caps.enter(f"key-{number % 3}", 4, "openai/gpt-4o", 10)
        if slot is None:
            return
        entered += 1
        try:
            await anyio.sleep_forever()
        finally:
            slot.leave()

    async with anyio.create_task_group() as tg:
        for number in range(30):
            tg.start_soon(request, number)
        await anyio.wait_all_tasks_blocked()
        assert entered == 10 and caps.count("openai/gpt-4o") == 10
        assert max(caps.count(f"key-{n}") for n in range(3)) <= 4
        tg.cancel_scope.cancel()
    assert caps.counts() == {"profiles": {}, "deployments": {}}


async def test_requests_cancelled_while_waiting_for_a_place_leave_nothing_behind() -> None:
    caps, ten_served = InFlight(), anyio.Event()
    served = 0

    async def request() -> None:
        nonlocal served
        while True:  # wait for a place, as a queued request would
            slot = caps.enter("a", 2, "d", None)
            if slot is not None:
                break
            await anyio.lowlevel.checkpoint()
        with slot:
            assert caps.count("a") <= 2
            await anyio.lowlevel.checkpoint()
            served += 1
            if served == 10:
                ten_served.set()

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(request)
        await ten_served.wait()  # some served, others holding a place or waiting for one
        tg.cancel_scope.cancel()
    assert served > 0
    assert caps.counts() == {"profiles": {}, "deployments": {}}


def test_threads_never_exceed_a_cap_and_leave_nothing_behind() -> None:
    caps = InFlight()
    seen: list[int] = []
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(2000):
            slot: Slot | None = caps.enter("a", 3, "d", None)
            if slot is not None:
                with slot:
                    seen.append(caps.count("a"))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert seen and max(seen) <= 3
    assert caps.counts() == {"profiles": {}, "deployments": {}}
