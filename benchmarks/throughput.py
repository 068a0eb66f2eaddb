"""Webhook throughput and latency against a bare app and a naive ceiling, in the same run.

    python benchmarks/throughput.py [--quick] [--rounds 3] [--requests 20000]
                                    [--concurrency 32,50] [--bodies deployment_status,push,push-3]
                                    [--series 1k,10k,100k] [--pin] [--source DIR]

Three servers run side by side for the whole run, each in its own process on a loopback port:

- bare: starlette on the same uvicorn (uvloop, httptools), reading the body and answering;
- naive ceiling: the same, plus what any webhook receiver must do, the simple way: HMAC-SHA256
  of the body checked against X-Hub-Signature-256, ``json.loads`` of the whole body, one
  prometheus-client counter incremented;
- observer: started the way users start it (``python -m observer``), default logging written to
  /dev/null, so the per-delivery log line is part of what is measured.

The load comes from this process over raw keep-alive connections. Rounds alternate between the
servers, so that noise from a shared machine falls on all; figures are medians over rounds and
ratios against the bare app. Two bodies: GitHub's 13.8 KB ``deployment_status`` (its own
delivery id, status id and deployment id each time) and ~100 KB ``push`` (about 120 commits,
each push with its own delivery id, ``after`` and commit shas): the counting path is measured,
not the duplicate path. ``push-3`` is as large with three commits, long messages making up the
size: the body's cost without the per-commit work. Each at every connection count of
``--concurrency``.

Then, with a fresh observer holding each of ``--series`` (repositories x 5 environments): the
time one scrape takes (text, and OpenMetrics with gzip as Prometheus asks), resident size, and
webhook latency with and without one scrape a second running alongside, interleaved.

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
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import bodies
from benchmarks.harness import (
    OBSERVER,
    ROOT,
    SECRET,
    TOKEN,
    Figures,
    Request,
    exchange,
    load,
    median_of,
    observer_env,
    rss_mib,
    server,
    show,
    use_uvloop,
)
from tests.processes import free_port

BASELINE = """
import hashlib, hmac, json, sys, uvicorn
from prometheus_client import Counter
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

SECRET = sys.argv[3].encode()
DELIVERIES = Counter("deliveries", "Deliveries accepted")

async def bare(request):
    await request.body()
    return JSONResponse({"result": "accepted"})

async def naive(request):
    body = await request.body()
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("x-hub-signature-256", "")):
        return JSONResponse({"error": "signature"}, status_code=401)
    json.loads(body)
    DELIVERIES.inc()
    return JSONResponse({"result": "accepted"})

async def healthz(request):
    return JSONResponse({"status": "ok"})

webhook = naive if sys.argv[2] == "naive" else bare
app = Starlette(routes=[Route("/webhook", webhook, methods=["POST"]), Route("/healthz", healthz)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
            log_level="warning", access_log=False)
"""
OPENMETRICS_GZIP = {
    "Accept": "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5",
    "Accept-Encoding": "gzip",
}
PUSH_BYTES = 100_000
PRIME_BATCH = 5_000
ENVIRONMENTS = 5
SCRAPES = 7


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
    port: int, requests: Sequence[Request], concurrency: int, interval: float
) -> Figures:
    scrapes: list[float] = []
    loading = True

    async def scraper() -> None:
        while loading:
            elapsed, _ = await scrape(port, OPENMETRICS_GZIP)
            scrapes.append(elapsed)
            await asyncio.sleep(max(0.0, interval - elapsed))

    task = asyncio.create_task(scraper())
    figures = await load(port, requests, concurrency)
    # The scrape under way is let finish: at 100k series one can outlast the whole load.
    loading = False
    await task
    return figures | {
        "scrapes": len(scrapes),
        "scrape_ms": statistics.median(scrapes) * 1000,
    }


def series(exposition: bytes) -> int:
    return sum(1 for line in exposition.splitlines() if line and not line.startswith(b"#"))


async def prime(port: int, repositories: int, environments: int) -> None:
    """Deployments for every repository x environment, through /api/event in big batches.

    Several connections at once, so that 100,000 series take seconds, not minutes.
    """
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
    batches = [events[i : i + PRIME_BATCH] for i in range(0, len(events), PRIME_BATCH)]

    async def connection(share: list[list[dict[str, str]]]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for batch in share:
            body = json.dumps(batch).encode()
            head = (
                "POST /api/event HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            status, answer = await exchange(reader, writer, head, body)
            assert status == 200, answer[:200]
        writer.close()

    await asyncio.gather(*(connection(batches[i::4]) for i in range(4)))


def sizes(text: str) -> list[int]:
    """``1k,10k,100k`` -> [1000, 10000, 100000]: repository x environment pairs."""
    factors = {"k": 1_000, "m": 1_000_000}
    return [
        int(item[:-1]) * factors[item[-1]] if item[-1] in factors else int(item)
        for item in text.lower().replace("_", "").split(",")
        if item
    ]


def counts(text: str) -> list[int]:
    return [int(item) for item in text.split(",")]


def webhooks(
    args: argparse.Namespace, sequence: bodies.Sequence, source: Path, log_level: str
) -> None:
    """Every body at every connection count, rounds interleaved between the three servers."""
    bare_port, naive_port, observer_port = free_port(), free_port(), free_port()
    baseline = [sys.executable, "-c", BASELINE]
    names = {
        "bare": "bare starlette, same uvicorn",
        "naive": "naive ceiling: HMAC + json.loads + counter",
        "observer": f"observer, LOG_LEVEL={log_level}",
    }
    with (
        server([*baseline, str(bare_port), "bare", SECRET], {}, bare_port, args.pin, source),
        server([*baseline, str(naive_port), "naive", SECRET], {}, naive_port, args.pin, source),
        server(
            OBSERVER, observer_env(observer_port, log_level), observer_port, args.pin, source
        ) as observer,
    ):
        ports = {"bare": bare_port, "naive": naive_port, "observer": observer_port}
        idle = rss_mib(observer.pid)
        for body in args.bodies:
            template, requests = {
                "push": (bodies.push(PUSH_BYTES), args.push_requests),
                # As large, but three commits with long messages: the body's cost without the
                # per-commit work.
                "push-3": (bodies.push(PUSH_BYTES, commits=3), args.push_requests),
            }.get(body, (bodies.deployment_status(), args.requests))
            where = f" to {args.environment}" if body == "deployment_status" else ""
            for concurrency in args.concurrency:
                rounds: dict[str, list[Figures]] = {name: [] for name in ports}
                for _ in range(args.rounds):
                    for name, port in ports.items():
                        batch = sequence.build(template, requests, environment=args.environment)
                        rounds[name].append(asyncio.run(load(port, batch, concurrency)))
                bare = median_of(rounds["bare"])
                rows = {
                    names[name]: (figures := median_of(rounds[name]))
                    | {"x_bare": figures["req_s"] / bare["req_s"]}
                    for name in ports
                }
                rows[names["observer"]] |= {
                    "rss_idle_mib": idle,
                    "rss_now_mib": rss_mib(observer.pid),
                }
                show(
                    f"POST /webhook, {template.size / 1000:.1f} KB {body}{where}, distinct ids; "
                    f"median of {args.rounds} interleaved rounds of {requests:,} at "
                    f"{concurrency} connections",
                    rows,
                )


def scrapes(
    args: argparse.Namespace,
    sequence: bodies.Sequence,
    source: Path,
    log_level: str,
    pairs: int,
) -> None:
    """One size: scrape time, resident size, webhook latency with and without scrapes."""
    repositories = max(pairs // ENVIRONMENTS, 1)
    port = free_port()
    env = observer_env(port, log_level) | {
        "MAX_REPOSITORIES": str(max(repositories, 2000)),
        "MAX_ENVIRONMENTS": str(ENVIRONMENTS),
        "MAX_EVENTS_PER_REQUEST": str(PRIME_BATCH),
    }
    template = bodies.deployment_status()
    concurrency = args.concurrency[0]
    # A fresh observer per size, so that it holds the series it is primed with and little else.
    with server(OBSERVER, env, port, args.pin, source) as observer:
        idle = rss_mib(observer.pid)
        started = time.perf_counter()
        asyncio.run(prime(port, repositories, ENVIRONMENTS))
        priming = time.perf_counter() - started
        _, text = asyncio.run(scrape(port, {}))
        resident = {"idle_mib": idle, "primed_mib": rss_mib(observer.pid), "priming_s": priming}
        timings: dict[str, Figures] = {}
        for name, headers in (("text", {}), ("OpenMetrics+gzip", OPENMETRICS_GZIP)):
            taken = [asyncio.run(scrape(port, headers))[0] * 1000 for _ in range(SCRAPES)]
            timings[name] = {"median_ms": statistics.median(taken), "max_ms": max(taken)}
        loaded: dict[str, list[Figures]] = {"quiet": [], "busy": []}
        for _ in range(args.rounds):
            batch = sequence.build(template, args.requests, repositories, ENVIRONMENTS)
            loaded["quiet"].append(asyncio.run(load(port, batch, concurrency)))
            batch = sequence.build(template, args.requests, repositories, ENVIRONMENTS)
            loaded["busy"].append(asyncio.run(load_while_scraping(port, batch, concurrency, 1.0)))
        quiet, busy = median_of(loaded["quiet"]), median_of(loaded["busy"])
        resident["loaded_mib"] = rss_mib(observer.pid)
    title = f"{series(text):,} series ({repositories:,} repositories x {ENVIRONMENTS})"
    show(
        f"{title}: resident size, and the time to prime them through /api/event",
        {"observer": resident},
    )
    show(f"{title}: one scrape, median and max of {SCRAPES}", timings)
    show(
        f"{title}: webhooks, median of {args.rounds} interleaved rounds of {args.requests:,} "
        f"at {concurrency} connections",
        {
            "without scrapes": quiet,
            "one scrape a second": busy | {"p99_x_quiet": busy["p99_ms"] / quiet["p99_ms"]},
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds; no 100k")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20_000, help="per round")
    parser.add_argument(
        "--push-requests", type=int, help="per round with ~100 KB push bodies (requests / 4)"
    )
    parser.add_argument(
        "--concurrency", type=counts, default=[32, 50], help="connection counts, e.g. 32,50"
    )
    parser.add_argument(
        "--bodies",
        type=lambda text: [body for body in text.split(",") if body],
        default=["deployment_status", "push"],
        help="deployment_status,push,push-3 ('' for none: only the series)",
    )
    parser.add_argument(
        "--series",
        type=sizes,
        help="repository x environment pairs to scrape at (1k,10k,100k; quick: 1k,10k; '' none)",
    )
    parser.add_argument(
        "--environment",
        default="env-0",
        help="where the deployment_status bodies deploy; 'production' adds the history and "
        "lead-time work only production deployments get",
    )
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--pin", action="store_true", help="servers on core 0, load on core 1")
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout to run observer from")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.requests = 2, 3_000
    if args.series is None:
        args.series = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    if args.push_requests is None:
        args.push_requests = max(args.requests // 4, 100)
    unknown = set(args.bodies) - {"deployment_status", "push", "push-3"}
    if unknown:
        parser.error(f"unknown bodies: {', '.join(sorted(unknown))}")
    if args.pin:
        os.sched_setaffinity(0, {1})
    use_uvloop()
    source = args.source.resolve()
    sequence = bodies.Sequence()
    if args.bodies:
        webhooks(args, sequence, source, args.log_level)
    for pairs in args.series:
        scrapes(args, sequence, source, args.log_level, pairs)


if __name__ == "__main__":
    main()
