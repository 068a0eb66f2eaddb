"""A small fake of GitLab's REST (v4) and GraphQL APIs, served over real HTTP by uvicorn.

It answers from a commit graph, deployments and merge requests, as GitLab's API documentation
describes them (doc/api/deployments.md, repositories.md, commits.md, merge_requests.md and the
GraphQL reference): the project is the URL-encoded path with namespace, the token comes in
``PRIVATE-TOKEN``, answers carry the ``RateLimit-*`` headers, lists the pagination headers,
a missing project or commit answers 404 with GitLab's message, and ``limited`` requests answer
429 with ``Retry-After``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.fake_github import serving

TOKEN = "glpat-test-token"
RATE_HEADERS = {"RateLimit-Limit": "2000", "RateLimit-Remaining": "1999"}


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass
class MergeRequest:
    iid: int
    merged_at: datetime
    # The commits of its branch (authored times), oldest first; and what merging made.
    commits: list[tuple[str, datetime]]
    merge_commit_sha: str | None = None
    squash_commit_sha: str | None = None
    target_branch: str = "main"


@dataclass
class Project:
    # sha -> (author time, committer time, parents)
    commits: dict[str, tuple[datetime, datetime, list[str]]] = field(default_factory=dict)
    # (id, environment, sha, status, updated_at)
    deployments: list[tuple[int, str, str, str, datetime]] = field(default_factory=list)
    merge_requests: list[MergeRequest] = field(default_factory=list)


@dataclass
class FakeGitLab:
    prefix: str = ""
    projects: dict[str, Project] = field(default_factory=dict)
    # (method, path as sent, still URL-encoded, with its query)
    requests: list[tuple[str, str]] = field(default_factory=list)
    graphql_queries: list[dict[str, Any]] = field(default_factory=list)
    # The next this many requests answer 429 with this Retry-After.
    limited: int = 0
    retry_after: str = "0"
    # Projects GraphQL does not show (a token that may read the repository, not its MRs).
    hidden_from_graphql: set[str] = field(default_factory=set)
    # The next this many requests answer 500.
    failures: int = 0
    # Headers added to every answer (a spent rate limit, say).
    extra_headers: dict[str, str] = field(default_factory=dict)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    def project(self, path: str) -> Project:
        return self.projects.setdefault(path, Project())

    async def handle(self, request: Request) -> Response:
        response = await self._answer(request)
        for name, value in self.extra_headers.items():
            response.headers[name] = value
        return response

    async def _answer(self, request: Request) -> Response:
        raw = request.scope["raw_path"].decode()
        query = request.scope["query_string"].decode()
        self.requests.append((request.method, raw + (f"?{query}" if query else "")))
        if request.headers.get("private-token") != TOKEN:
            return JSONResponse({"message": "401 Unauthorized"}, status_code=401)
        if self.failures:
            self.failures -= 1
            return JSONResponse({"message": "500 Internal Server Error"}, status_code=500)
        if self.limited:
            self.limited -= 1
            return JSONResponse(
                {"message": "429 Too Many Requests"},
                status_code=429,
                headers={"Retry-After": self.retry_after, "RateLimit-Remaining": "0"},
            )
        path = raw.removeprefix(self.prefix)
        if request.method == "POST" and path == "/api/graphql":
            return JSONResponse(self._graphql(await request.json()), headers=RATE_HEADERS)
        parts = path.split("/")
        # /api/v4/projects/:id/...; the id is one segment: its slashes are encoded.
        if parts[:4] != ["", "api", "v4", "projects"] or len(parts) < 6:
            return JSONResponse({"error": "404 Not Found"}, status_code=404)
        project = self.projects.get(unquote(parts[4]))
        if project is None:
            return JSONResponse({"message": "404 Project Not Found"}, status_code=404)
        params = {k: v[0] for k, v in parse_qs(query).items()}
        return self._rest(project, parts[5:], params)

    def _rest(self, project: Project, rest: list[str], params: dict[str, str]) -> Response:
        if rest == ["deployments"]:
            return self._deployments(project, params)
        if rest == ["repository", "compare"]:
            ahead = _reachable(project, params["to"]) - _reachable(project, params["from"])
            commits = sorted(ahead, key=lambda sha: project.commits[sha][1])
            body = {
                "commit": _commit(project, commits[-1]) if commits else None,
                "commits": [_commit(project, sha) for sha in commits],
                "diffs": [],
                "compare_timeout": False,
                "compare_same_ref": params["from"] == params["to"],
                "web_url": "https://gitlab.example.com/group/app/-/compare/a...b",
            }
            return JSONResponse(body, headers=RATE_HEADERS)
        if rest[:2] == ["repository", "commits"] and len(rest) in (3, 4):
            sha = rest[2]
            if sha not in project.commits:
                return JSONResponse({"message": "404 Commit Not Found"}, status_code=404)
            if len(rest) == 3:
                return JSONResponse(_commit(project, sha), headers=RATE_HEADERS)
            found = [_rest_mr(mr) for mr in project.merge_requests if sha in _shas(mr)]
            return _page(found, params)
        if rest[:1] == ["merge_requests"] and len(rest) == 3 and rest[2] == "commits":
            mr = next((m for m in project.merge_requests if str(m.iid) == rest[1]), None)
            if mr is None:
                return JSONResponse({"message": "404 Not found"}, status_code=404)
            # Newest first, as GitLab lists them.
            listed = [_mr_commit(sha, t) for sha, t in reversed(mr.commits)]
            return _page(listed, params)
        return JSONResponse({"error": "404 Not Found"}, status_code=404)

    def _deployments(self, project: Project, params: dict[str, str]) -> Response:
        found = [
            d
            for d in project.deployments
            if d[1] == params.get("environment", d[1]) and d[3] == params.get("status", d[3])
        ]
        if params.get("order_by") == "updated_at":
            found.sort(key=lambda d: d[4], reverse=params.get("sort") == "desc")
        listed = [
            {
                "id": id_,
                "iid": id_,
                "ref": "main",
                "sha": sha,
                "created_at": iso(updated),
                "updated_at": iso(updated),
                "status": status,
                "user": {"id": 1, "username": "root", "name": "Administrator"},
                "environment": {"id": 9, "name": environment},
                "deployable": None,
            }
            for id_, environment, sha, status, updated in found
        ]
        return _page(listed, params)

    def _graphql(self, body: dict[str, Any]) -> dict[str, Any]:
        self.graphql_queries.append(body)
        variables = body.get("variables") or {}
        path = variables.get("path", "")
        project = None if path in self.hidden_from_graphql else self.projects.get(path)
        if project is None:
            return {"data": {"project": None}}
        after = datetime.fromisoformat(variables["after"])
        before = datetime.fromisoformat(variables["before"])
        merged = sorted(
            (mr for mr in project.merge_requests if after <= mr.merged_at <= before),
            key=lambda mr: mr.merged_at,
            reverse=True,
        )
        start = int(variables.get("cursor") or 0)
        size = 50
        page = merged[start : start + size]
        more = start + size < len(merged)
        nodes = [
            {
                "iid": str(mr.iid),
                "mergedAt": iso(mr.merged_at),
                "mergeCommitSha": mr.merge_commit_sha,
                "squashCommitSha": mr.squash_commit_sha,
                "commitsWithoutMergeCommits": {
                    "nodes": [{"sha": sha, "authoredDate": iso(t)} for sha, t in mr.commits]
                },
            }
            for mr in page
        ]
        return {
            "data": {
                "project": {
                    "mergeRequests": {
                        "pageInfo": {
                            "hasNextPage": more,
                            "endCursor": str(start + size) if more else None,
                        },
                        "nodes": nodes,
                    }
                }
            }
        }


def _reachable(project: Project, sha: str) -> set[str]:
    seen: set[str] = set()
    pending = [sha]
    while pending:
        current = pending.pop()
        if current in seen or current not in project.commits:
            continue
        seen.add(current)
        pending.extend(project.commits[current][2])
    return seen


def _commit(project: Project, sha: str) -> dict[str, Any]:
    authored, committed, parents = project.commits[sha]
    return {
        "id": sha,
        "short_id": sha[:8],
        "created_at": iso(committed),
        "parent_ids": parents,
        "title": f"Commit {sha[:8]}",
        "message": f"Commit {sha[:8]}",
        "author_name": "Example User",
        "author_email": "user@example.com",
        "authored_date": iso(authored),
        "committer_name": "Example User",
        "committer_email": "user@example.com",
        "committed_date": iso(committed),
        "web_url": f"https://gitlab.example.com/group/app/-/commit/{sha}",
    }


def _mr_commit(sha: str, authored: datetime) -> dict[str, Any]:
    return {
        "id": sha,
        "short_id": sha[:8],
        "created_at": iso(authored),
        "title": f"Commit {sha[:8]}",
        "message": f"Commit {sha[:8]}",
        "author_name": "Example User",
        "author_email": "user@example.com",
        "authored_date": iso(authored),
        "committed_date": iso(authored),
    }


def _shas(mr: MergeRequest) -> set[str]:
    made = {mr.merge_commit_sha, mr.squash_commit_sha} - {None}
    return {sha for sha, _ in mr.commits} | {s for s in made if s is not None}


def _rest_mr(mr: MergeRequest) -> dict[str, Any]:
    return {
        "id": 1000 + mr.iid,
        "iid": mr.iid,
        "project_id": 3,
        "title": "A change",
        "state": "merged",
        "merged_at": iso(mr.merged_at),
        "target_branch": mr.target_branch,
        "source_branch": f"feature-{mr.iid}",
        "merge_commit_sha": mr.merge_commit_sha,
        "squash_commit_sha": mr.squash_commit_sha,
        "squash": mr.squash_commit_sha is not None,
    }


def _page(items: list[dict[str, Any]], params: dict[str, str]) -> Response:
    per_page = int(params.get("per_page", "20"))
    page = int(params.get("page", "1"))
    chunk = items[(page - 1) * per_page : page * per_page]
    pages = max((len(items) + per_page - 1) // per_page, 1)
    headers = {
        **RATE_HEADERS,
        "X-Page": str(page),
        "X-Per-Page": str(per_page),
        "X-Total": str(len(items)),
        "X-Total-Pages": str(pages),
        "X-Next-Page": str(page + 1) if page < pages else "",
        "X-Prev-Page": str(page - 1) if page > 1 else "",
    }
    return JSONResponse(chunk, headers=headers)


@contextlib.contextmanager
def serve(fake: FakeGitLab) -> Iterator[FakeGitLab]:
    with serving(fake.handle, "GitLab") as port:
        fake.port = port
        yield fake
