"""The cost of teams per pull request event, in process: without TEAMS_FILE, and with a large one.

    python benchmarks/teams.py [--events 20000] [--teams 200] [--members 10]

Each event goes through the recorder as a webhook's would (repository figures, team figures,
size, rework), with a ``stat`` of the file on every look at the teams. Also timed: one parse of
the file, which happens only when its content changes.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from observer.app import create_app
from observer.domain import PullRequest
from observer.settings import Settings
from observer.teams.file import parse_teams
from observer.web.routes import Services


def teams_document(teams: int, members: int) -> dict[str, object]:
    return {
        "teams": {
            f"team-{t}": {
                "repositories": [f"org-{t}/*", f"octo/app-{t}"],
                "members": [
                    {"login": f"user-{t}-{m}", "weight": 0.5, "joined": "2025-01-01"}
                    for m in range(members)
                ],
            }
            for t in range(teams)
        },
        "exclude": [f"optout-{n}" for n in range(50)],
    }


async def run(settings: Settings, events: int, teams: int, members: int) -> float:
    # The recorder as the service wires it, from the app's own start-up.
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:
        services: Services = state["services"]  # type: ignore[index]
        return await record(services, events, teams, members)


async def record(services: Services, events: int, teams: int, members: int) -> float:
    recorder = services.recorder
    start = datetime(2026, 11, 1, tzinfo=UTC)
    began = time.perf_counter()
    for n in range(events):
        created = start + timedelta(minutes=n)
        await recorder.pull_request(
            PullRequest(
                repository=f"octo/app-{n % teams}",
                number=n,
                action="merged",
                created_at=created,
                merged_at=created + timedelta(hours=3),
                key=f"pr:{n}",
                author=f"user-{n % teams}-{n % members}",
                title="Add a thing",
                labels=("enhancement",),
                size=120,
            )
        )
    return (time.perf_counter() - began) / events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--teams", type=int, default=200)
    parser.add_argument("--members", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "teams.yaml"
        path.write_text(yaml.safe_dump(teams_document(args.teams, args.members)))
        text = path.read_bytes()
        began = time.perf_counter()
        parse_teams(text)
        parse = time.perf_counter() - began
        sizes = (args.events, args.teams, args.members)
        plain = asyncio.run(run(Settings(webhook_secret="x"), *sizes))
        with_teams = asyncio.run(run(Settings(webhook_secret="x", teams_file=path), *sizes))
    print(f"file: {args.teams} teams x {args.members} members, {len(text)} bytes")
    print(f"parse and validate once: {parse * 1000:.1f} ms")
    print(f"per merged pull request, no TEAMS_FILE: {plain * 1e6:.1f} us")
    print(f"per merged pull request, with TEAMS_FILE: {with_teams * 1e6:.1f} us")


if __name__ == "__main__":
    main()
