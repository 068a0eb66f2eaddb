"""The Grafana dashboard: valid JSON for current Grafana, and every query sound PromQL that reads
only what the service exports or the rules record."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

from tests.promql import (
    DASHBOARD,
    DASHBOARD_GENERATOR,
    PROMETHEUS_SERIES,
    ROOT,
    TEAM_DASHBOARD,
    dashboard_queries,
    exported_series,
    interpolate,
    metric_names,
    promtool_check_expressions,
    recorded_series,
    require_binary,
    run,
)

PROVISIONING = ROOT / "examples" / "grafana" / "provisioning"


def load() -> dict:  # type: ignore[type-arg]
    return json.loads(DASHBOARD.read_text())


def test_the_dashboard_is_generated_from_its_source() -> None:
    result = run([sys.executable, str(DASHBOARD_GENERATOR), "--check"])
    assert result.returncode == 0, result.stderr


def test_the_dashboard_has_the_shape_grafana_expects() -> None:
    document = load()
    assert document["uid"] == "observer-dora"
    assert document["schemaVersion"] >= 39
    ids = [panel["id"] for panel in document["panels"]]
    assert len(ids) == len(set(ids))
    names = [variable["name"] for variable in document["templating"]["list"]]
    assert names == ["datasource", "environment", "repository"]
    for panel in document["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], panel["title"]
            assert panel["description"], panel["title"]


def test_every_query_parses_in_prometheus(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    queries = {where: interpolate(expr) for where, expr in dashboard_queries().items()}
    assert len(queries) > 30
    promtool_check_expressions(promtool, queries, tmp_path)


def test_every_query_reads_only_exported_or_recorded_series() -> None:
    known = exported_series() | recorded_series() | PROMETHEUS_SERIES
    for where, expr in dashboard_queries().items():
        unknown = metric_names(interpolate(expr)) - known
        assert not unknown, f"{where} reads {unknown}"


def test_the_keys_and_tiers_are_each_compared_with_the_previous_period() -> None:
    compared = 0
    for panel in load()["panels"]:
        if panel["type"] != "stat":
            continue
        current, before = panel["targets"]
        assert "offset" not in current["expr"], panel["title"]
        assert before["expr"] == current["expr"].replace("}", "} offset 30d"), panel["title"]
        compared += 1
    assert compared >= 8


def test_the_four_keys_their_tiers_trends_and_data_quality_are_there() -> None:
    titles = {panel["title"] for panel in load()["panels"]}
    for wanted in [
        "Deployment frequency", "Lead time for changes (median)", "Change failure rate",
        "Failed deployment recovery time (median)", "Deployment frequency tier",
        "Lead time tier", "Change failure rate tier", "Recovery time tier", "Repositories",
        "Repositories by time since their last event", "Deployments that got no lead time",
        "Rejected deliveries and events", "Lead-time enrichment failures",
    ]:  # fmt: skip
        assert wanted in titles
    trends = [p for p in load()["panels"] if p["type"] == "timeseries" and "7-day" in p["title"]]
    # The four keys' trends, change failures by cause, and the rework rate beside the failure rate.
    assert len(trends) == 6
    assert load()["time"]["from"] == "now-30d"


def test_change_failures_are_stacked_by_cause_beside_the_rework_rate() -> None:
    panels = {panel["title"]: panel for panel in load()["panels"]}
    by_cause = panels["Change failures by cause (7-day window)"]
    assert by_cause["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"
    [query] = by_cause["targets"]
    assert query["expr"].startswith("sum by (cause) (")
    assert "dora_change_failures:increase_7d" in query["expr"]
    rates = panels["Change failure rate and rework rate (7-day window)"]
    assert [t["legendFormat"] for t in rates["targets"]] == ["change failure rate", "rework rate"]
    assert "dora_rework_deployments:increase_7d" in rates["targets"][1]["expr"]
    assert rates["gridPos"]["y"] == by_cause["gridPos"]["y"]  # side by side
    [latest] = panels["Change failures with their deployment and fix (exemplars)"]["targets"]
    assert latest["exemplar"] is True
    assert "increase(dora_change_failures_total{" in latest["expr"]
    key = panels["Change failure rate"]
    assert "dora_change_failures:increase_30d" in key["targets"][0]["expr"]


def test_queries_filter_by_the_repository_and_environment_variables() -> None:
    for where, expr in dashboard_queries().items():
        if re.search(r"repository_environment\w*:", expr):
            assert '=~"$repository"' in expr and '=~"$environment"' in expr, where


def test_provisioning_files() -> None:
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "observer.yaml").read_text())
    assert provider["apiVersion"] == 1
    (entry,) = provider["providers"]
    assert entry["type"] == "file"
    assert entry["options"]["path"]
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yaml").read_text())
    assert datasources["apiVersion"] == 1
    assert datasources["datasources"][0]["type"] == "prometheus"


def test_the_team_view_selects_one_team_and_keeps_the_environment() -> None:
    document = json.loads(TEAM_DASHBOARD.read_text())
    assert document["uid"] == "observer-teams"
    variables = {variable["name"]: variable for variable in document["templating"]["list"]}
    assert list(variables) == ["datasource", "environment", "team"]
    assert variables["team"]["multi"] is False
    assert "observer_repository_team_info" in variables["team"]["query"]["query"]
    ids = [panel["id"] for panel in document["panels"]]
    assert len(ids) == len(set(ids))
    for panel in document["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["description"], panel["title"]


def test_the_team_view_shows_the_keys_rework_flow_and_surveys() -> None:
    titles = {panel["title"] for panel in json.loads(TEAM_DASHBOARD.read_text())["panels"]}
    for wanted in [
        "Deployment frequency", "Lead time for changes (median)", "Change failure rate",
        "Failed deployment recovery time (median)", "Rework rate",
        "Pull request cycle time (median)", "Time to first review (median)",
        "Pull request size (median)", "Satisfaction (average, 1 to 5)", "Net promoter score",
        "Teams",
    ]:  # fmt: skip
        assert wanted in titles


def test_every_team_view_query_parses_and_reads_only_known_series(tmp_path: Path) -> None:
    known = exported_series() | recorded_series() | PROMETHEUS_SERIES
    queries = dashboard_queries(TEAM_DASHBOARD)
    for where, expr in queries.items():
        unknown = metric_names(interpolate(expr)) - known
        assert not unknown, f"{where} reads {unknown}"
    promtool = require_binary("promtool")
    promtool_check_expressions(
        promtool, {where: interpolate(expr) for where, expr in queries.items()}, tmp_path
    )


def test_every_team_view_panel_is_about_the_selected_team() -> None:
    for where, expr in dashboard_queries(TEAM_DASHBOARD).items():
        if where.startswith("panel 'Teams'") or where.startswith("variable"):
            continue
        assert 'team=~"$team"' in expr, where


QUICKSTART = ROOT / "examples" / "quickstart"


def test_the_docs_call_each_dashboard_by_its_title() -> None:
    titles = {json.loads(path.read_text())["title"] for path in (DASHBOARD, TEAM_DASHBOARD)}
    named = [
        name
        for path in (ROOT / "README.md", QUICKSTART / "compose.yaml")
        for name in re.findall(r'dashboard "([^"]+)"', path.read_text())
    ]
    assert named
    assert [name for name in named if name not in titles] == []


def _outer_by(expr: str) -> set[str] | None:
    """The labels an expression keeps when it is one ``sum by (...)``, else None."""
    found = re.match(r"\s*(?:sum|avg|max|min|count) by \(([^)]*)\)", expr)
    return None if found is None else {label.strip() for label in found[1].split(",")}


def test_a_legend_and_a_description_name_only_the_labels_the_query_keeps() -> None:
    checked = 0
    for path in (DASHBOARD, TEAM_DASHBOARD):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                kept = _outer_by(target["expr"])
                if kept is None:
                    continue
                checked += 1
                legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
                assert legend <= kept, panel["title"]
                for per in re.findall(r"One line per ([\w ]+)", panel.get("description", "")):
                    assert set(per.split(" and ")) <= kept, panel["title"]
    assert checked


def _scrape_interval(prometheus_yml: Path) -> str:
    config = yaml.safe_load(prometheus_yml.read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "observer"]
    interval: str = job.get("scrape_interval", config["global"]["scrape_interval"])
    return interval


def _time_interval(datasources: Path) -> str:
    (source,) = yaml.safe_load(datasources.read_text())["datasources"]
    interval: str = source["jsonData"]["timeInterval"]
    return interval


def test_each_grafana_data_source_has_the_scrape_interval_of_its_prometheus() -> None:
    shipped = PROVISIONING / "datasources" / "prometheus.yaml"
    assert _time_interval(shipped) == _scrape_interval(ROOT / "examples/prometheus/prometheus.yml")
    # The quickstart's Grafana: the data source directory its compose file mounts.
    grafana = yaml.safe_load((QUICKSTART / "compose.yaml").read_text())["services"]["grafana"]
    (mounted,) = [
        volume.split(":")[0]
        for volume in grafana["volumes"]
        if volume.split(":")[1] == "/etc/grafana/provisioning/datasources"
    ]
    quickstart = (QUICKSTART / mounted / "prometheus.yaml").resolve()
    assert _time_interval(quickstart) == _scrape_interval(QUICKSTART / "prometheus.yml")
