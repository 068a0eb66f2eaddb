"""Throughput, latency and memory of /webhook, measured against baselines in the same run.

    python benchmarks/throughput.py [--requests 20000] [--concurrency 64]

Each configuration runs in its own server process on a loopback port; the load comes from this
process over raw asyncio connections with keep-alive. Baselines: GET /healthz on the same
server (the cost of HTTP alone), and the same service on uvicorn's pure-Python event loop and
HTTP parser (asyncio, h11). Memory: the server's resident set after the load, and after a
flood of deliveries from distinct repositories (label caps and de-duplication bound it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.processes import free_port, wait_until_ready
from tests.signing import sign

SECRET = "benchmark-secret"
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "github"
SERVER = """
import sys, uvicorn
from observer.app import create_app
from observer.settings import Settings
uvicorn.run(create_app(Settings()), host="127.0.0.1", port=int(sys.argv[1]), loop=sys.argv[2],
            http=sys.argv[3], log_level="warning", access_log=False)
"""


@contextmanager
def server(loop: str, http: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {**os.environ, "WEBHOOK_SECRET": SECRET, "LOG_LEVEL": "warning"}
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), loop, http],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/healthz", process)
        yield port, process
    finally:
        process.terminate()
        process.wait(timeout=15)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes
) -> int:
    writer.write(head + body)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


def webhook_requests(count: int, repositories: int = 1) -> list[tuple[bytes, bytes]]:
    template = json.loads((FIXTURES / "deployment_status_success.json").read_text())
    built = []
    for index in range(count):
        template["deployment_status"]["id"] = 10_000_000 + index
        template["deployment"]["id"] = 10_000_000 + index
        template["repository"]["full_name"] = f"octo-org/app-{index % repositories}"
        body = json.dumps(template).encode()
        head = (
            "POST /webhook HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"X-GitHub-Event: deployment_status\r\nX-GitHub-Delivery: {uuid.uuid4()}\r\n"
            f"X-Hub-Signature-256: {sign(SECRET, body)}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        built.append((head, body))
    return built


def health_requests(count: int) -> list[tuple[bytes, bytes]]:
    return [(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n", b"")] * count


async def load(
    port: int, requests: list[tuple[bytes, bytes]], concurrency: int
) -> dict[str, float]:
    latencies: list[float] = []
    failures = 0
    shares = [requests[i::concurrency] for i in range(concurrency)]

    async def connection(share: list[tuple[bytes, bytes]]) -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for head, body in share:
            started = time.perf_counter()
            if await request(reader, writer, head, body) != 200:
                failures += 1
            latencies.append(time.perf_counter() - started)
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection(share) for share in shares))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests_per_second": len(requests) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "failures": failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    deliveries = webhook_requests(args.requests)
    results: dict[str, dict[str, float]] = {}
    for loop, http in (("uvloop", "httptools"), ("asyncio", "h11")):
        with server(loop, http) as (port, process):
            idle = rss_mib(process.pid)
            health = asyncio.run(load(port, health_requests(args.requests), args.concurrency))
            webhook = asyncio.run(load(port, deliveries, args.concurrency))
            results[f"{loop}+{http} GET /healthz"] = health
            results[f"{loop}+{http} POST /webhook"] = webhook | {
                "rss_idle_mib": idle,
                "rss_after_mib": rss_mib(process.pid),
            }
    with server("uvloop", "httptools") as (port, process):
        flood = webhook_requests(args.requests, repositories=args.requests)
        before = rss_mib(process.pid)
        outcome = asyncio.run(load(port, flood, args.concurrency))
        results[f"flood: {args.requests} distinct repositories"] = outcome | {
            "rss_before_mib": before,
            "rss_after_mib": rss_mib(process.pid),
        }
    width = max(len(name) for name in results)
    for name, figures in results.items():
        shown = "  ".join(f"{key}={value:,.1f}" for key, value in figures.items())
        sys.stdout.write(f"{name:<{width}}  {shown}\n")


if __name__ == "__main__":
    main()
