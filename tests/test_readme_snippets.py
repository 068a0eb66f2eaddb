"""The README's CI snippets and its signed curl example, run as their CI systems run them.

Each snippet's shell is taken from the README unchanged and run with the variables
its CI system sets (documented values: GitHub Actions' ``job.status``, GitLab's
``CI_JOB_STATUS`` in ``after_script``, Jenkins' ``currentBuild.currentResult``), in the shell
its CI system uses (bash; Jenkins: ``sh -xe``) and, for the commits they send, in a real git
repository, against a real observer process; then the counters are read from /metrics.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.exposition import Exposition
from tests.processes import ObserverProcess, start_observer
from tests.readme import block

pytestmark = pytest.mark.e2e

TOKEN = "snippet-api-token"
SECRET = "change-me"  # the README's own quick-start value
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def observer() -> Iterator[ObserverProcess]:
    with start_observer({"API_TOKEN": TOKEN}, secret=SECRET) as running:
        yield running


BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"]
# Jenkins' sh step: /bin/sh (dash on Debian and Ubuntu agents), -x and -e.
SH = ["sh", "-xe", "-c"]


def bash(
    script: str, env: dict[str, str], cwd: Path | None = None, shell: list[str] = BASH
) -> subprocess.CompletedProcess[str]:
    """``script`` run the way CI runners run a step: bash, stop at the first failing command.

    In ``cwd``: the checkout, a directory without one by default.
    """
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    with tempfile.TemporaryDirectory() as empty:
        return subprocess.run(
            [*shell, script],
            env={**base, **env},
            cwd=cwd or empty,
            capture_output=True,
            text=True,
            timeout=30,
        )


def deployments(observer: ObserverProcess, repository: str, environment: str) -> dict[str, float]:
    metrics = Exposition(httpx.get(f"{observer.url}/metrics").text)
    return {
        status: metrics.get(
            "dora_deployments_total", repository=repository, environment=environment, status=status
        )
        for status in ("success", "failure", "error")
    }


def api_log_ids(observer: ObserverProcess, expected: str | None = None) -> list[str]:
    """The ids logged for /api/event requests; waits for ``expected`` to be among them."""

    def ids(lines: list[dict[str, Any]]) -> list[str]:
        return [line["id"] for line in lines if line["message"] == "api event" and "id" in line]

    return ids(observer.log_lines(lambda lines: expected is None or expected in ids(lines)))


# --- GitHub Actions ---------------------------------------------------------------------------


def actions_expressions(observer: ObserverProcess, job_status: str) -> dict[str, str]:
    """The value GitHub Actions gives each ``${{ }}`` expression the snippet uses."""
    return {
        "vars.OBSERVER_URL": observer.url,
        "secrets.OBSERVER_API_TOKEN": TOKEN,
        "job.status == 'success' && 'success' || 'failure'": (
            "success" if job_status == "success" else "failure"
        ),
    }


def render(value: str, expressions: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        assert expression in expressions, f"the test does not know ${{{{ {expression} }}}}"
        return expressions[expression]

    return re.sub(r"\$\{\{(.*?)\}\}", one, value)


@pytest.mark.parametrize(
    ("job_status", "counted"), [("success", "success"), ("failure", "failure")]
)
def test_the_github_actions_snippet(
    observer: ObserverProcess, job_status: str, counted: str
) -> None:
    (step,) = yaml.safe_load(block("yaml", "name: Tell observer"))
    # Runs after success or failure, not when the run was cancelled.
    assert step["if"] == "success() || failure()"
    # Values reach the shell through env only, never pasted into the script.
    assert "${{" not in step["run"]
    expressions = actions_expressions(observer, job_status)
    env = {name: render(str(value), expressions) for name, value in step["env"].items()}
    run_id = "7001" if job_status == "success" else "7002"
    env.update(
        GITHUB_REPOSITORY="Octo-Org/Shop",
        GITHUB_SHA=SHA,
        GITHUB_RUN_ID=run_id,
        GITHUB_RUN_ATTEMPT="1",
        CI="true",
        GITHUB_ACTIONS="true",
    )
    before = deployments(observer, "octo-org/shop", "production")
    for _ in range(2):  # a repeated notification counts once
        result = bash(step["run"], env)
        assert result.returncode == 0, result.stdout + result.stderr
    after = deployments(observer, "octo-org/shop", "production")
    assert after[counted] - before[counted] == 1
    assert sum(after.values()) - sum(before.values()) == 1
    assert f"github-{run_id}-1" in api_log_ids(observer, f"github-{run_id}-1")


# --- GitLab CI --------------------------------------------------------------------------------


def gitlab_job() -> dict[str, Any]:
    document = yaml.safe_load(block("yaml", "after_script"))
    (job,) = document.values()
    assert isinstance(job, dict)
    return job


@pytest.mark.parametrize(
    ("job_status", "counted"), [("success", "success"), ("failed", "failure"), ("canceled", None)]
)
def test_the_gitlab_snippet(
    observer: ObserverProcess, job_status: str, counted: str | None
) -> None:
    job = gitlab_job()
    environment = job["environment"]
    name = environment if isinstance(environment, str) else environment["name"]
    assert name == "production"
    # GitLab runs after_script's lines as one shell script.
    script = "\n".join(job["after_script"])
    job_id = {"success": "31001", "failed": "31002", "canceled": "31003"}[job_status]
    env = {
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_PROJECT_PATH": "Platform/Payments/ledger-api",
        "CI_ENVIRONMENT_NAME": name,
        "CI_JOB_STATUS": job_status,
        "CI_COMMIT_SHA": SHA,
        "CI_JOB_ID": job_id,
        "CI_PIPELINE_ID": "9001",
        "OBSERVER_URL": observer.url,
        "OBSERVER_API_TOKEN": TOKEN,
    }
    repository = "platform/payments/ledger-api"
    before = deployments(observer, repository, "production")
    for _ in range(2):
        result = bash(script, env)
        assert result.returncode == 0, result.stdout + result.stderr
    after = deployments(observer, repository, "production")
    if counted is None:
        assert after == before
        assert f"gitlab-{job_id}" not in api_log_ids(observer)
    else:
        assert after[counted] - before[counted] == 1
        assert sum(after.values()) - sum(before.values()) == 1
        assert f"gitlab-{job_id}" in api_log_ids(observer, f"gitlab-{job_id}")


# --- Jenkins ----------------------------------------------------------------------------------


def jenkins_shell() -> str:
    groovy = block("groovy", "post {")
    assert 'withEnv(["BUILD_RESULT=${currentBuild.currentResult}"])' in groovy
    shell = groovy.split("sh '''", 1)[1].split("'''", 1)[0]
    # Groovy processes backslash escapes even in ''' strings; without any, it passes the
    # shell on exactly as written.
    assert "\\" not in shell
    return shell


@pytest.mark.parametrize(
    ("result", "counted"), [("SUCCESS", "success"), ("FAILURE", "failure"), ("ABORTED", None)]
)
def test_the_jenkins_snippet(observer: ObserverProcess, result: str, counted: str | None) -> None:
    number = {"SUCCESS": "41", "FAILURE": "42", "ABORTED": "43"}[result]
    env = {
        "BUILD_RESULT": result,
        "GIT_COMMIT": SHA,
        "JOB_NAME": "deploy-app",
        "BUILD_NUMBER": number,
        "BUILD_TAG": f"jenkins-deploy-app-{number}",
        "JENKINS_URL": "https://jenkins.example.com/",
        "OBSERVER_URL": observer.url,
        "OBSERVER_TOKEN": TOKEN,
    }
    before = deployments(observer, "octo/app", "production")
    for _ in range(2):
        ran = bash(jenkins_shell(), env, shell=SH)
        assert ran.returncode == 0, ran.stdout + ran.stderr
    after = deployments(observer, "octo/app", "production")
    if counted is None:
        assert after == before
    else:
        assert after[counted] - before[counted] == 1
        assert sum(after.values()) - sum(before.values()) == 1
        # The id is Jenkins' BUILD_TAG as it is, not prefixed a second time.
        assert f"jenkins-deploy-app-{number}" in api_log_ids(
            observer, f"jenkins-deploy-app-{number}"
        )
    assert not [i for i in api_log_ids(observer) if i.startswith("jenkins-jenkins-")]


# --- The signed curl example ------------------------------------------------------------------


def test_the_signed_curl_example_counts_a_deployment(observer: ObserverProcess) -> None:
    script = block("sh", "openssl dgst")
    before = deployments(observer, "octo/app", "staging")
    result = bash(script, {"OBSERVER_URL": observer.url})
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["results"][0]["result"] == "accepted"
    after = deployments(observer, "octo/app", "staging")
    assert after["success"] - before["success"] == 1


def test_subgroup_paths_are_repositories_for_api_event_only(observer: ObserverProcess) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    event = {
        "type": "incident",
        "action": "opened",
        "id": "INC-subgroup",
        "opened_at": "2026-01-05T10:00:00Z",
    }
    for path in ("group/sub/app", "owner/group/name"):
        response = httpx.post(
            f"{observer.url}/api/event", json={**event, "repository": path}, headers=headers
        )
        assert response.status_code == 200, response.text
    for path in ("app", "/group/app", "group//app", "group/app/"):
        response = httpx.post(
            f"{observer.url}/api/event", json={**event, "repository": path}, headers=headers
        )
        assert response.status_code == 422, path
        assert response.json()["fields"][0]["field"] == "repository"
    metrics = Exposition(httpx.get(f"{observer.url}/metrics").text)
    assert metrics.get("dora_incidents_opened_total", repository="group/sub/app") == 1


# --- What real pipelines send: odd job names, no checkout, commits, refusals, older curl ---------


def git_repository(path: Path) -> list[str]:
    """A repository with four commits authored days ago; their shas, oldest first."""

    def git(*args: str, when: str = "") -> str:
        env = {**os.environ, "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
        env.update(GIT_AUTHOR_NAME="Dev", GIT_AUTHOR_EMAIL="dev@example.com")
        env.update(GIT_COMMITTER_NAME="Dev", GIT_COMMITTER_EMAIL="dev@example.com")
        done = subprocess.run(
            ["git", *args], cwd=path, env=env, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    git("init", "-q", "-b", "main")
    shas = []
    for day in (5, 4, 3, 2):
        (path / "change.txt").write_text(f"{day}\n")
        git("add", "change.txt")
        authored = datetime.now(UTC) - timedelta(days=day)
        git("commit", "-q", "-m", f"change {day}", when=authored.isoformat(timespec="seconds"))
        shas.append(git("rev-parse", "HEAD"))
    return shas


def lead_times(observer: ObserverProcess, repository: str) -> float:
    metrics = Exposition(httpx.get(f"{observer.url}/metrics").text)
    return metrics.get(
        "dora_lead_time_seconds_count", repository=repository, environment="production"
    )


def lead_times_reach(observer: ObserverProcess, repository: str, count: float) -> float:
    """The count once it reaches ``count`` (lead time is computed after the answer), or after
    10 seconds."""
    deadline = time.monotonic() + 10
    while (found := lead_times(observer, repository)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


@pytest.mark.parametrize(
    ("tag", "expected_id"),
    [
        ("jenkins-Deploy App-43", "jenkins-Deploy-App-43"),
        ('jenkins-team-Déploiement "eu"-44', "jenkins-team-D--ploiement--eu--44"),
    ],
)
def test_the_jenkins_snippet_takes_any_job_name_and_a_job_without_checkout(
    observer: ObserverProcess, tag: str, expected_id: str
) -> None:
    # No SCM checkout: neither GIT_COMMIT nor GIT_PREVIOUS_SUCCESSFUL_COMMIT is set.
    env = {
        "BUILD_RESULT": "SUCCESS",
        "BUILD_TAG": tag,
        "OBSERVER_URL": observer.url,
        "OBSERVER_TOKEN": TOKEN,
    }
    before = deployments(observer, "octo/app", "production")
    for _ in range(2):
        ran = bash(jenkins_shell(), env, shell=SH)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert ran.stdout.strip().endswith(" 200")
    after = deployments(observer, "octo/app", "production")
    assert after["success"] - before["success"] == 1
    assert expected_id in api_log_ids(observer, expected_id)


def test_the_jenkins_snippet_sends_the_commits_since_the_last_successful_build(
    observer: ObserverProcess, tmp_path: Path
) -> None:
    shas = git_repository(tmp_path)
    env = {
        "BUILD_RESULT": "SUCCESS",
        "BUILD_TAG": "jenkins-deploy-app-50",
        "GIT_COMMIT": shas[-1],
        "GIT_PREVIOUS_SUCCESSFUL_COMMIT": shas[0],
        "OBSERVER_URL": observer.url,
        "OBSERVER_TOKEN": TOKEN,
    }
    before = lead_times(observer, "octo/app")
    for _ in range(2):
        ran = bash(jenkins_shell(), env, cwd=tmp_path, shell=SH)
        assert ran.returncode == 0, ran.stdout + ran.stderr
    # The three commits after the previous successful build's, once each.
    assert lead_times_reach(observer, "octo/app", before + 3) == before + 3


@pytest.mark.parametrize(("before_sha", "observed"), [("first", 3), ("zeros", 0)])
def test_the_gitlab_snippet_sends_the_commits_of_the_push(
    observer: ObserverProcess, tmp_path: Path, before_sha: str, observed: int
) -> None:
    shas = git_repository(tmp_path)
    job = gitlab_job()
    job_id = {"first": "32001", "zeros": "32002"}[before_sha]
    repository = f"platform/payments/ledger-{before_sha}"
    env = {
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_PROJECT_PATH": repository,
        "CI_ENVIRONMENT_NAME": "production",
        "CI_JOB_STATUS": "success",
        "CI_COMMIT_SHA": shas[-1],
        # A manual, scheduled or merge-request pipeline has zeros.
        "CI_COMMIT_BEFORE_SHA": shas[0] if before_sha == "first" else "0" * 40,
        "CI_JOB_ID": job_id,
        "OBSERVER_URL": observer.url,
        "OBSERVER_API_TOKEN": TOKEN,
    }
    ran = bash("\n".join(job["after_script"]), env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert deployments(observer, repository, "production")["success"] == 1
    assert f"gitlab-{job_id}" in api_log_ids(observer, f"gitlab-{job_id}")
    assert lead_times_reach(observer, repository, observed) == observed


def test_a_refused_event_prints_the_answer_and_fails_the_step(observer: ObserverProcess) -> None:
    env = {
        "BUILD_RESULT": "SUCCESS",
        "BUILD_TAG": "jenkins-deploy-app-60",
        "OBSERVER_URL": observer.url,
        "OBSERVER_TOKEN": "not-the-token",
    }
    ran = bash(jenkins_shell(), env, shell=SH)
    assert ran.returncode != 0
    assert "bearer token is not valid" in ran.stdout and ran.stdout.strip().endswith(" 401")


def test_the_snippets_use_only_curl_options_older_agents_have() -> None:
    # curl 7.61 (RHEL 8) lacks --fail-with-body (7.76); these it has had for many years.
    known = {"-sS", "-w", "-d", "-H"}
    snippets = [
        yaml.safe_load(block("yaml", "name: Tell observer"))[0]["run"],
        "\n".join(gitlab_job()["after_script"]),
        jenkins_shell(),
    ]
    for snippet in snippets:
        # The words of each curl command, up to the end of its line (or of its continuation).
        commands = snippet.replace("\\\n", " ").split("curl ")[1:]
        words = " ".join(command.split("\n", 1)[0] for command in commands).split()
        used = {word for word in words if word.startswith("-")}
        assert used <= known, used - known
