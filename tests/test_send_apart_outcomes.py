"""What a send in a task of its own ends with reaches its caller, whatever it is.

On asyncio ``HttpxSender`` sends (and releases a streamed reply) in a task of its own (see
``failover.http``); its caller waits for that task's outcome. A send that ends with an
exception that is not an ``Exception`` (a ``BaseException`` of a library's own, a
cancellation of that task by someone else) must end the caller's wait too, never leave it
waiting for good.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from failover.http import HttpxSender
from failover.providers.base import HttpRequest

pytestmark = pytest.mark.anyio

_REQUEST = HttpRequest("POST", "http://upstream.test/v1/chat", {}, b"{}")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class _Unusual(BaseException):
    """Not an ``Exception``: what a send is not expected to raise, but may."""


class _Raising(httpx.AsyncBaseTransport):
    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0)
        raise self.error


class _Stalled(httpx.AsyncBaseTransport):
    """Sends nothing back until its task is cancelled from outside."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[object]] = []
        self.sending = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.append(task)
        self.sending.set()
        await asyncio.Event().wait()
        raise AssertionError("never answered")


async def _send(sender: HttpxSender, streamed: bool) -> None:
    async with sender.open(_REQUEST, 10.0, read_timeout=5.0 if streamed else None) as reply:
        await reply.aread()


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_send_raising_a_base_exception_hands_it_to_its_caller(streamed: bool) -> None:
    http = httpx.AsyncClient(transport=_Raising(_Unusual("odd")))
    sender = HttpxSender(http)
    with pytest.raises(_Unusual, match="odd"):
        await asyncio.wait_for(_send(sender, streamed), 5.0)  # not for good
    await http.aclose()


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_send_cancelled_by_someone_else_cancels_its_callers_wait(streamed: bool) -> None:
    transport = _Stalled()
    http = httpx.AsyncClient(transport=transport)
    sender = HttpxSender(http)
    caller = asyncio.ensure_future(_send(sender, streamed))
    await transport.sending.wait()
    (sending,) = transport.tasks
    assert sending is not caller  # the send's own task
    sending.cancel()  # e.g. a loop shutting down cancels every task
    done, _ = await asyncio.wait({caller}, timeout=5.0)
    assert caller in done, "the caller still waits for a send that has ended"
    assert caller.cancelled()
    await http.aclose()
