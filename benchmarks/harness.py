"""What the benchmarks share: servers on loopback, raw keep-alive load, resident size, tables."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.processes import wait_until_ready

ROOT = Path(__file__).resolve().parents[1]

SECRET = "benchmark-secret"
TOKEN = "benchmark-token"
OBSERVER = [sys.executable, "-m", "observer"]
Figures = dict[str, float]
# One request as it goes on the wire: the head (with its signature) and the body.
Request = tuple[bytes, bytes]
# Figures that count things, shown without decimals.
COUNTS = frozenset({"failures", "scrapes", "deliveries"})


def use_uvloop() -> None:
    """The load generator on uvloop when it is there, so it is not the bottleneck."""
    with suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


@contextmanager
def server(
    command: list[str], env: dict[str, str], port: int, pin: bool, source: Path
) -> Iterator[subprocess.Popen[bytes]]:
    if pin:
        command = ["taskset", "-c", "0", *command]
    process = subprocess.Popen(
        command,
        env={**os.environ, "PYTHONPATH": str(source), **env},
        cwd=source,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/healthz", process)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=15)


def observer_env(port: int, log_level: str) -> dict[str, str]:
    return {
        "WEBHOOK_SECRET": SECRET,
        "API_TOKEN": TOKEN,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": log_level,
        # Nothing scrapes at the end of a benchmark: waiting the default 10 s for it only slows
        # the run down.
        "SHUTDOWN_TIMEOUT": "1",
    }


def rss_mib(pid: int) -> float:
    """Resident size of a process, read from outside it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes
) -> tuple[int, bytes]:
    writer.write(head + body)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length = 0
    chunked = False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            # prometheus-client's own ASGI app (before) answers without a length.
            chunked = b"chunked" in value.lower()
    if not chunked:
        return status, await reader.readexactly(length)
    chunks = []
    while size := int((await reader.readline()).split(b";")[0], 16):
        chunks.append(await reader.readexactly(size))
        await reader.readline()
    await reader.readline()
    return status, b"".join(chunks)


async def load(port: int, requests: Sequence[Request], concurrency: int) -> Figures:
    """Send every request over ``concurrency`` keep-alive connections; throughput and latency."""
    latencies: list[float] = []
    failures = 0
    shares = [requests[i::concurrency] for i in range(concurrency)]

    async def connection(share: Sequence[Request]) -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for head, body in share:
            started = time.perf_counter()
            status, _ = await exchange(reader, writer, head, body)
            latencies.append(time.perf_counter() - started)
            failures += status != 200
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection(share) for share in shares))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "req_s": len(requests) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "failures": failures,
    }


def median_of(rounds: list[Figures]) -> Figures:
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def show(title: str, rows: dict[str, Figures]) -> None:
    """A table: one row per name, one column per figure any row has (blank where it has none)."""
    columns = list(dict.fromkeys(key for figures in rows.values() for key in figures))
    cells = {
        name: [_cell(key, figures[key]) if key in figures else "" for key in columns]
        for name, figures in rows.items()
    }
    widths = [
        max(len(column), *(len(row[i]) for row in cells.values()))
        for i, column in enumerate(columns)
    ]
    first = max(len(name) for name in rows)
    lines = [f"\n{title}", "  " + " " * first + _joined(columns, widths)]
    lines += [f"  {name:<{first}}" + _joined(row, widths) for name, row in cells.items()]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _cell(key: str, value: float) -> str:
    if value != value:  # NaN: nothing measured
        return "-"
    if key in COUNTS:
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"


def _joined(cells: list[str], widths: list[int]) -> str:
    return "".join(f"  {cell:>{width}}" for cell, width in zip(cells, widths, strict=True))
