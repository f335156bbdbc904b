"""A loopback TCP proxy that delays every byte by a fixed one-way latency.

Simulates a distant server (tests and ``bench sonic``: how much added latency async
dispatch hides): each chunk is forwarded ``one_way_s`` after it arrived, in
order, without holding back later chunks, so concurrent requests on one connection
(gRPC multiplexes them) each see the latency once rather than queueing behind each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque


class DelayProxy:
    """Listen on 127.0.0.1 (free port), forward to ``target`` ("host:port") with delay."""

    def __init__(self, target: str, one_way_s: float) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.one_way_s = one_way_s
        self.port: int | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="delay-proxy")
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> DelayProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                      ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            self._tasks.discard(task)
            return
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        except (asyncio.CancelledError, OSError):
            pass
        finally:
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()
            self._tasks.discard(task)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        queue: deque[tuple[float, bytes]] = deque()
        arrived = asyncio.Event()
        done = False

        async def deliver() -> None:
            while True:
                while not queue:
                    if done:
                        return
                    arrived.clear()
                    await arrived.wait()
                due, data = queue.popleft()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                dst.write(data)
                await dst.drain()

        sender = asyncio.ensure_future(deliver())
        try:
            while data := await src.read(1 << 16):
                queue.append((time.monotonic() + self.one_way_s, data))
                arrived.set()
        except BaseException:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            raise
        done = True
        arrived.set()
        await sender
        with contextlib.suppress(Exception):
            dst.write_eof()
