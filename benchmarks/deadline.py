"""How long ``deadline=1`` takes against a server that answers at once, then trickles.

The server (127.0.0.1, in this process) sends its headers at once and then one byte every
0.2 s of a 100-byte body, so every read is on time and only a hard deadline can stop the
request. Prints the elapsed time of each of five requests and the error they ended in.
Run: ``.venv/bin/python benchmarks/deadline.py``.
"""

from __future__ import annotations

import time

import anyio
import anyio.abc

from failover import AllAttemptsFailed, AuthProfile, ResilientClient


async def trickle(stream: anyio.abc.SocketStream) -> None:
    received = b""
    while b"\r\n\r\n" not in received:
        received += await stream.receive()
    await stream.send(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n"
    )
    try:
        for _ in range(100):
            await anyio.sleep(0.2)
            await stream.send(b" ")
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass  # the client gave up, as it should


async def main() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    profile = AuthProfile("local", "vllm", "sk-local", base_url=f"http://127.0.0.1:{port}/v1")
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, trickle)
        async with ResilientClient(["vllm/any"], [profile], deadline=1) as client:
            for _ in range(5):
                started = time.perf_counter()
                try:
                    await client.complete([{"role": "user", "content": "hi"}])
                    outcome = "answered (unexpected)"
                except AllAttemptsFailed as error:
                    outcome = f"{type(error).__name__}: {str(error).partition(chr(10))[0]}"
                elapsed = time.perf_counter() - started
                print(f"deadline=1 against a trickling server: {elapsed:.3f} s, {outcome}")
        group.cancel_scope.cancel()


if __name__ == "__main__":
    anyio.run(main)
