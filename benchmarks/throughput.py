"""Webhook throughput and latency against a bare app on the same uvicorn, in the same run.

    python benchmarks/throughput.py [--quick] [--rounds 3] [--requests 20000] [--concurrency 32]
                                    [--pin] [--source DIR]

Two servers run side by side for the whole run, each in its own process on a loopback port:

- bare: starlette on the same uvicorn (uvloop, httptools), reading the body and answering;
- observer: started the way users start it (``python -m observer``), default logging written to
  /dev/null, so the per-delivery log line is part of what is measured.

The load comes from this process over raw keep-alive connections. Rounds alternate between the
two servers, so that noise from a shared machine falls on both; figures are medians over rounds
and ratios against the bare app. Every delivery carries its own delivery id, status id and
deployment id: the counting path is measured, not the duplicate path.

Then, with the observer holding about 1,000 and then 10,000 series (repositories x
environments): the time one scrape takes (text, and OpenMetrics with gzip as Prometheus asks),
and webhook latency with and without one scrape a second running alongside, interleaved.

``--pin`` puts the servers on core 0 and the load on core 1. ``--source DIR`` runs the observer
from another checkout (``git archive <commit> | tar -x -C DIR``) to measure before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.processes import free_port, wait_until_ready
from tests.signing import sign

ROOT = Path(__file__).resolve().parents[1]
SECRET = "benchmark-secret"
TOKEN = "benchmark-token"
FIXTURES = ROOT / "tests" / "fixtures" / "github"
BARE = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def webhook(request):
    await request.body()
    return JSONResponse({"result": "accepted"})

async def healthz(request):
    return JSONResponse({"status": "ok"})

app = Starlette(routes=[Route("/webhook", webhook, methods=["POST"]), Route("/healthz", healthz)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
            log_level="warning", access_log=False)
"""
OPENMETRICS_GZIP = {
    "Accept": "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5",
    "Accept-Encoding": "gzip",
}
Figures = dict[str, float]


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
    }


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Deliveries:
    """Signed deployment_status deliveries, each with ids never sent before in this run."""

    def __init__(self) -> None:
        self._template = json.loads((FIXTURES / "deployment_status_success.json").read_text())
        self._next = 10_000_000

    def build(
        self, count: int, repositories: int = 1, environments: int = 1
    ) -> list[tuple[bytes, bytes]]:
        built = []
        template = self._template
        for index in range(count):
            self._next += 1
            template["deployment_status"]["id"] = self._next
            template["deployment"]["id"] = self._next
            template["repository"]["full_name"] = f"octo-org/app-{index % repositories}"
            environment = f"env-{index // repositories % environments}"
            template["deployment"]["environment"] = environment
            template["deployment_status"]["environment"] = environment
            body = json.dumps(template).encode()
            head = (
                "POST /webhook HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                f"X-GitHub-Event: deployment_status\r\nX-GitHub-Delivery: {uuid.uuid4()}\r\n"
                f"X-Hub-Signature-256: {sign(SECRET, body)}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            built.append((head, body))
        return built


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


async def load(port: int, requests: list[tuple[bytes, bytes]], concurrency: int) -> Figures:
    latencies: list[float] = []
    failures = 0
    shares = [requests[i::concurrency] for i in range(concurrency)]

    async def connection(share: list[tuple[bytes, bytes]]) -> None:
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


async def scrape(port: int, headers: dict[str, str]) -> tuple[float, bytes]:
    """One GET /metrics on its own connection: seconds taken, and the decoded body."""
    head = "GET /metrics HTTP/1.1\r\nHost: bench\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()
    )
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    status, body = await exchange(reader, writer, (head + "\r\n").encode(), b"")
    elapsed = time.perf_counter() - started
    writer.close()
    assert status == 200, status
    return elapsed, gzip.decompress(body) if "Accept-Encoding" in headers else body


async def load_while_scraping(
    port: int, requests: list[tuple[bytes, bytes]], concurrency: int, interval: float
) -> Figures:
    scrapes: list[float] = []

    async def scraper() -> None:
        while True:
            elapsed, _ = await scrape(port, OPENMETRICS_GZIP)
            scrapes.append(elapsed)
            await asyncio.sleep(max(0.0, interval - elapsed))

    task = asyncio.create_task(scraper())
    figures = await load(port, requests, concurrency)
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
    return figures | {
        "scrapes": len(scrapes),
        "scrape_ms": statistics.median(scrapes) * 1000 if scrapes else float("nan"),
    }


def series(exposition: bytes) -> int:
    return sum(1 for line in exposition.splitlines() if line and not line.startswith(b"#"))


async def prime(port: int, repositories: int, environments: int) -> None:
    """Deployments for every repository x environment, through /api/event in batches."""
    events = [
        {
            "type": "deployment",
            "repository": f"octo-org/app-{r}",
            "environment": f"env-{e}",
            "status": "success",
            "timestamp": "2026-11-23T09:00:00Z",
            "id": f"prime-{r}-{e}",
        }
        for r in range(repositories)
        for e in range(environments)
    ]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for start in range(0, len(events), 1000):
        body = json.dumps(events[start : start + 1000]).encode()
        head = (
            "POST /api/event HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        status, answer = await exchange(reader, writer, head, body)
        assert status == 200, answer[:200]
    writer.close()


def median_of(rounds: list[Figures]) -> Figures:
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def show(title: str, rows: dict[str, Figures]) -> None:
    sys.stdout.write(f"\n{title}\n")
    width = max(len(name) for name in rows)
    for name, figures in rows.items():
        shown = "  ".join(f"{key}={value:,.2f}" for key, value in figures.items())
        sys.stdout.write(f"  {name:<{width}}  {shown}\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (CI)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20_000, help="per round")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--pin", action="store_true", help="servers on core 0, load on core 1")
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout to run observer from")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.requests = 2, 3_000
    if args.pin:
        os.sched_setaffinity(0, {1})
    with suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    source = args.source.resolve()
    deliveries = Deliveries()
    bare_port, observer_port = free_port(), free_port()
    observer_command = [sys.executable, "-m", "observer"]
    with (
        server([sys.executable, "-c", BARE, str(bare_port)], {}, bare_port, args.pin, source),
        server(
            observer_command,
            observer_env(observer_port, args.log_level),
            observer_port,
            args.pin,
            source,
        ) as observer,
    ):
        idle = rss_mib(observer.pid)
        rounds: dict[str, list[Figures]] = {"bare": [], "observer": []}
        for _ in range(args.rounds):
            for name, port in (("bare", bare_port), ("observer", observer_port)):
                batch = deliveries.build(args.requests)
                rounds[name].append(asyncio.run(load(port, batch, args.concurrency)))
        bare = median_of(rounds["bare"])
        rows = {"bare starlette, same uvicorn": bare | {"x_bare": 1.0}}
        mine = median_of(rounds["observer"])
        rows[f"observer, LOG_LEVEL={args.log_level}"] = mine | {
            "x_bare": mine["req_s"] / bare["req_s"],
            "rss_idle_mib": idle,
            "rss_after_mib": rss_mib(observer.pid),
        }
        show(
            f"POST /webhook, 13.8 KB deployment_status, distinct ids; median of {args.rounds} "
            f"interleaved rounds of {args.requests:,} at {args.concurrency} connections",
            rows,
        )

    # A fresh observer per size, so each holds the series it is primed with and little else.
    for repositories, environments in ((200, 5), (2_000, 5)):
        port = free_port()
        env = observer_env(port, args.log_level) | {"MAX_ENVIRONMENTS": str(environments)}
        with server(observer_command, env, port, args.pin, source) as observer:
            asyncio.run(prime(port, repositories, environments))
            _, text = asyncio.run(scrape(port, {}))
            count = series(text)
            timings: dict[str, Figures] = {}
            for name, headers in (("text", {}), ("OpenMetrics+gzip", OPENMETRICS_GZIP)):
                taken = [asyncio.run(scrape(port, headers))[0] * 1000 for _ in range(7)]
                timings[f"scrape, {name}"] = {
                    "median_ms": statistics.median(taken),
                    "max_ms": max(taken),
                }
            timings["resident"] = {"rss_mib": rss_mib(observer.pid)}
            loaded: dict[str, list[Figures]] = {"without scrapes": [], "one scrape a second": []}
            for _ in range(args.rounds):
                batch = deliveries.build(args.requests, repositories, environments)
                loaded["without scrapes"].append(asyncio.run(load(port, batch, args.concurrency)))
                batch = deliveries.build(args.requests, repositories, environments)
                loaded["one scrape a second"].append(
                    asyncio.run(load_while_scraping(port, batch, args.concurrency, 1.0))
                )
            quiet = median_of(loaded["without scrapes"])
            busy = median_of(loaded["one scrape a second"])
            timings["webhooks without scrapes"] = quiet
            timings["webhooks, one scrape a second"] = busy | {
                "p99_x_quiet": busy["p99_ms"] / quiet["p99_ms"]
            }
            show(f"{count:,} series ({repositories:,} repositories x {environments})", timings)


if __name__ == "__main__":
    main()
