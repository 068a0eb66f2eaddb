"""A minimal HTTP/1.1 client on asyncio streams, to open thousands of connections at once.

httpx's connection pool queues requests beyond its limit, so it cannot put 2,000 deliveries in
flight together; this client opens one connection a request, as GitHub's senders do.
"""

from __future__ import annotations

import asyncio
import contextlib


async def post(
    host: str, port: int, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes]:
    """Send one request on a new connection; the status and the body of the answer."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Connection: close",
            f"Content-Length: {len(body)}",
        ]
        head += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        return status, await reader.readexactly(length)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
