"""A TCP proxy that drops connections: a flaky network between observer and its store.

It forwards each connection to its upstream and, on a seeded random share of the chunks it
forwards (either direction), sends only part of the chunk, or none, and closes both sides: a
command cut in the middle, or one that was applied but whose answer never arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Iterator

from tests.processes import free_port

CHUNK = 65_536


class FlakyProxy:
    def __init__(self, upstream_port: int, *, rate: float, seed: int) -> None:
        self.port = free_port()
        self.drops = 0
        self._upstream = upstream_port
        self._rate = rate
        self._random = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", self.port)
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream)
        except OSError:
            writer.close()
            return
        closed = asyncio.Event()
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer, closed)),
            asyncio.create_task(self._pump(up_reader, writer, closed)),
        ]
        await closed.wait()
        for pump in pumps:
            pump.cancel()
        for side in (writer, up_writer):
            side.close()
            with contextlib.suppress(OSError, ConnectionError):
                await side.wait_closed()

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, closed: asyncio.Event
    ) -> None:
        try:
            while not closed.is_set():
                chunk = await source.read(CHUNK)
                if not chunk:
                    break
                if self._random.random() < self._rate:
                    # Part of the chunk, or none of it, then the connection is gone.
                    self.drops += 1
                    sink.write(chunk[: self._random.randrange(len(chunk) + 1)])
                    with contextlib.suppress(OSError, ConnectionError):
                        await sink.drain()
                    break
                sink.write(chunk)
                await sink.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            closed.set()


@contextlib.contextmanager
def flaky_proxy(upstream_port: int, *, rate: float, seed: int) -> Iterator[FlakyProxy]:
    proxy = FlakyProxy(upstream_port, rate=rate, seed=seed)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
