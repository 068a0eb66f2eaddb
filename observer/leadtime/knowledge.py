"""What webhooks have already told the service, so that the GitHub API is asked only for the rest.

Commits never change, so what is learnt stays true; the store's bounds and times to live are
all that forget it. Every key starts with the repository's lower-cased full name, never its
label (which may have folded into 'other'), and is shared by every replica using the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from observer.domain import Commit, PullRequest, Push, at
from observer.leadtime import commitlist
from observer.state import Store, Unit

BRANCH_PREFIX = "refs/heads/"
# Pushes that may have carried one commit (to a feature branch, then develop, then main).
MAX_CARRIERS = 8
# Pushes walked back from a deployed commit to the one deployed before it.
MAX_CHAIN = 200
# Commits kept per push for the chain: GitHub sends up to 2,048, and the store keeps thousands
# of pushes. The deployment a chain through a longer push ships is counted as truncated.
MAX_PUSH_COMMITS = 100


@dataclass(frozen=True, slots=True)
class KnownPull:
    number: int
    merged_at: float | None
    merge_commit_sha: str | None
    # Author time of the pull request's earliest commit, when it is known.
    first_commit_time: float | None = None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> KnownPull:
        return cls(
            int(doc["number"]),
            doc.get("merged_at"),
            doc.get("merge_commit_sha"),
            doc.get("first_commit_time"),
        )


def _key(repository: str, name: str) -> str:
    # A space is in neither a repository's name, a sha nor a branch's.
    return f"{repository} {name}"


def innermost(pulls: Iterable[KnownPull]) -> KnownPull | None:
    """Of the pull requests that carried one commit, the one that brought it first.

    A feature pull request merged into a release branch is merged before the release's own.
    """
    merged = [pull for pull in pulls if pull.merged_at is not None]
    return min(merged, key=lambda pull: pull.merged_at or 0.0, default=None)


class Knowledge:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def learn_push(self, unit: Unit, push: Push) -> None:
        """What a push taught, written with the push's own unit."""
        repository = push.repository.lower()
        # Each commit's time, converted once: a push carries up to thousands of commits.
        shipped = [(c.sha, c.time.timestamp()) for c in push.commits]
        keys = [_key(repository, sha) for sha, _ in shipped]
        if shipped:
            await unit.put_many(
                "commit", {key: moment for key, (_, moment) in zip(keys, shipped, strict=True)}
            )
        if not push.ref.startswith(BRANCH_PREFIX):
            return
        branch = push.ref.removeprefix(BRANCH_PREFIX)
        if not push.deleted:
            record = _push_record(push.before, shipped)
            await unit.put_many("push", {_key(repository, push.after): record})
            await unit.append_many(
                "carried",
                dict.fromkeys(keys, push.after),
                MAX_CARRIERS,
            )
        # Only the earliest matters: one conversion, not one per commit.
        times = [min(commit.time for commit in push.new).timestamp()] if push.new else []
        restart = push.deleted or push.forced

        def start(known: Any) -> tuple[Any, None]:
            # A forced push or a deletion starts the branch's story again: a reused name
            # is other work.
            if push.deleted:
                return None, None
            candidates = times if restart or known is None else [*times, float(known)]
            return (min(candidates) if candidates else None), None

        await unit.update("branch", _key(repository, branch), start)

    async def learn_pull_request(self, unit: Unit, pull_request: PullRequest) -> None:
        if pull_request.action != "merged" or pull_request.merge_commit_sha is None:
            return
        repository = pull_request.repository.lower()
        first_commit = None
        if pull_request.head_ref is not None:
            # Taken now, and the branch forgotten, so that later work on a reused branch name
            # does not push this pull request's start back.
            first_commit = await unit.update(
                "branch", _key(repository, pull_request.head_ref), lambda known: (None, known)
            )
        merged_at = pull_request.merged_at.timestamp() if pull_request.merged_at else None
        known = KnownPull(
            pull_request.number, merged_at, pull_request.merge_commit_sha, first_commit
        )

        def remember(existing: Any) -> tuple[Any, None]:
            if existing is not None and existing.get("first_commit_time") is not None:
                return existing, None  # a repeated delivery; the first one took the start
            return asdict(known), None

        await unit.update("pull", _key(repository, pull_request.merge_commit_sha), remember)

    async def learn_pulls(self, repository: str, pulls: Iterable[KnownPull]) -> None:
        await self._store.put_many(
            "pull",
            {_key(repository, p.merge_commit_sha): asdict(p) for p in pulls if p.merge_commit_sha},
        )

    async def learn_commits(self, repository: str, commits: Iterable[Commit]) -> None:
        await self._store.put_many(
            "commit", {_key(repository, c.sha): c.time.timestamp() for c in commits}
        )

    async def commit_times(self, repository: str, shas: Iterable[str]) -> dict[str, float]:
        shas = list(shas)
        found = await self._store.get_many("commit", [_key(repository, sha) for sha in shas])
        return {
            sha: float(found[_key(repository, sha)])
            for sha in shas
            if _key(repository, sha) in found
        }

    async def carriers(self, repository: str, shas: Iterable[str]) -> dict[str, list[str]]:
        """For each commit a push carried, the 'after' of the pushes that carried it."""
        shas = list(shas)
        found = await self._store.lists("carried", [_key(repository, sha) for sha in shas])
        return {sha: found[_key(repository, sha)] for sha in shas if _key(repository, sha) in found}

    async def pulls_for(
        self, repository: str, shas: Iterable[str], carriers: Mapping[str, list[str]]
    ) -> dict[str, KnownPull]:
        """The merged pull request that brought each commit, where webhooks told it.

        A commit is a pull request's merge (or squash) commit, or was carried by the push of a
        merge; of several, the innermost pull request (merged first) brought it.
        """
        shas = list(shas)
        names = set(shas) | {after for afters in carriers.values() for after in afters}
        found = await self._store.get_many("pull", [_key(repository, name) for name in names])
        pulls = {name: KnownPull.from_json(found[_key(repository, name)]) for name in names
                 if _key(repository, name) in found}  # fmt: skip
        result = {}
        for sha in shas:
            candidates = [pulls[name] for name in (sha, *carriers.get(sha, ())) if name in pulls]
            pull = innermost(candidates)
            if pull is not None:
                result[sha] = pull
        return result

    async def learn_contains(self, repository: str, head: str, base: str) -> None:
        """``head`` contains ``base`` (GitHub's compare said the later deployment is behind)."""
        await self._store.put_many("failure", {_key(repository, f"{head}>{base}"): True})

    async def contains(self, repository: str, head: str, base: str) -> bool:
        """Whether ``head`` contains ``base``: as a compare told, or along the pushes seen."""
        if await self._store.get_many("failure", [_key(repository, f"{head}>{base}")]):
            return True
        return await self.push_chain(repository, head, base) is not None

    async def push_chain(self, repository: str, head: str, base: str) -> PushChain | None:
        """The commits of the pushes leading from ``base`` to ``head``, if every one was seen."""
        chain = PushChain([])
        current = head
        for _ in range(MAX_CHAIN):
            if current == base:
                return chain
            record = await self._push_containing(repository, current)
            if record is None:
                return None
            listed = commitlist.decode(record["commits"])
            shas = [sha for sha, _ in listed]
            upto = shas.index(current) + 1 if current in shas else len(listed)
            taken = listed[:upto]
            if base in shas[:upto]:
                taken = taken[shas.index(base) + 1 :]
                chain.commits.extend(_commits(taken))
                return chain
            chain.commits.extend(_commits(taken))
            chain.cut += int(record.get("cut", 0))
            current = str(record["before"])
        return None

    async def _push_containing(self, repository: str, sha: str) -> dict[str, Any] | None:
        found = await self._store.get_many("push", [_key(repository, sha)])
        if found:
            return dict(found[_key(repository, sha)])
        # A deployed commit in the middle of a push: the push that carried it.
        for after in (await self.carriers(repository, [sha])).get(sha, []):
            record = (await self._store.get_many("push", [_key(repository, after)])).get(
                _key(repository, after)
            )
            if record is not None and any(
                known == sha for known, _ in commitlist.decode(record["commits"])
            ):
                return dict(record)
        return None


@dataclass(slots=True)
class PushChain:
    commits: list[Commit]
    # Commits of its pushes past MAX_PUSH_COMMITS, which no record kept.
    cut: int = 0


def _push_record(before: str, shipped: list[tuple[str, float]]) -> dict[str, Any]:
    """What the chain needs of a push: its newest commits (the head among them) and before."""
    kept = shipped[-MAX_PUSH_COMMITS:]
    record: dict[str, Any] = {"before": before, "commits": commitlist.encode(kept)}
    if len(shipped) > len(kept):
        record["cut"] = len(shipped) - len(kept)
    return record


def _commits(items: Iterable[tuple[str, float]]) -> list[Commit]:
    return [Commit(sha, at(time)) for sha, time in items]
