#!/usr/bin/env python3
"""Builds the Grafana dashboards for observer: the four DORA keys, tiers, trends, data quality.

Writes ``examples/grafana/dashboards/observer-dora.json`` and the team view
``observer-teams.json`` (a ``$team`` variable), which are committed. Edit this file, not
the JSON, and run::

    python examples/grafana/generate.py            # rewrite the dashboard
    python examples/grafana/generate.py --check    # exit 1 when it is stale

Every query reads the records of ``examples/prometheus/rules/observer.rules.yml`` or the service's
own metrics. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().parent / "dashboards" / "observer-dora.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'repository=~"$repository", environment=~"$environment"'
REPO = 'repository=~"$repository"'

# Tier colours and names: the records are 4 (elite) ... 1 (low).
TIER_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "4": {"text": "Elite", "color": "green", "index": 0},
            "3": {"text": "High", "color": "blue", "index": 1},
            "2": {"text": "Medium", "color": "orange", "index": 2},
            "1": {"text": "Low", "color": "red", "index": 3},
        },
    }
]


def target(expr: str, legend: str = "", ref: str = "A", **extra: Any) -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "refId": ref,
        "range": True,
        "instant": False,
        **extra,
    }


def instant(expr: str, ref: str) -> dict[str, Any]:
    return target(expr, ref=ref, range=False, instant=True, format="table")


def panel(
    kind: str,
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    grid: tuple[int, int, int, int],
    *,
    unit: str = "short",
    decimals: int | None = None,
    mappings: list[dict[str, Any]] | None = None,
    thresholds: list[tuple[float | None, str]] | None = None,
    options: dict[str, Any] | None = None,
    overrides: list[dict[str, Any]] | None = None,
    transformations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    x, y, w, h = grid
    defaults: dict[str, Any] = {
        "unit": unit,
        "mappings": mappings or [],
        "thresholds": {
            "mode": "absolute",
            "steps": [
                {"color": color, "value": value}
                for value, color in (thresholds or [(None, "text")])
            ],
        },
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    if kind == "timeseries":
        defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10}
    result: dict[str, Any] = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options or {},
    }
    if transformations:
        result["transformations"] = transformations
    return result


def row(title: str, y: int) -> dict[str, Any]:
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
        "panels": [],
    }


STAT_OPTIONS = {
    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
    "colorMode": "value",
    "graphMode": "none",
    "textMode": "value_and_name",
    "justifyMode": "auto",
    "orientation": "vertical",
}
LEGEND = {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull"]}
TIMESERIES_OPTIONS = {"legend": LEGEND, "tooltip": {"mode": "multi", "sort": "desc"}}


def compared(expr: str) -> list[dict[str, Any]]:
    """The value over the last 30 days and over the 30 days before (``offset 30d``)."""
    before = expr.replace("}", "} offset 30d")
    return [target(expr, "last 30 days", "A"), target(before, "30 days before", "B")]


def quantile_of(buckets: str, selector: str, q: float = 0.5) -> str:
    return f"histogram_quantile({q}, sum by (le) ({buckets}{{{selector}}}))"


DEPLOYMENTS_30D = "repository_environment_status:dora_deployments:increase_30d"
CHANGE_FAILURES = "repository_environment_cause:dora_change_failures:increase_{w}"
REWORK = "repository_environment:dora_rework_deployments:increase_{w}"


def share_of_deployments(part: str, window: str) -> str:
    """A count over the selected deployments of the window: 0 without the part, nothing
    without deployments."""
    deployments = f"repository_environment_status:dora_deployments:increase_{window}"
    return f"(sum({part}{{{SEL}}}) or vector(0))\n/\n(sum({deployments}{{{SEL}}}) > 0)"


CFR_30D = share_of_deployments(CHANGE_FAILURES.format(w="30d"), "30d")

KEYS = [
    (
        "Deployment frequency",
        "Successful deployments a day over 30 days, summed over the selected repositories.",
        f"sum(repository_environment:dora_deployments:per_day_30d{{{SEL}}})",
        "short",
        2,
    ),
    (
        "Lead time for changes (median)",
        "Median time from a change's first commit to its successful deployment, over 30 days "
        "(production environments only).",
        quantile_of("repository_environment_le:dora_lead_time_seconds_bucket:increase_30d", SEL),
        "s",
        None,
    ),
    (
        "Change failure rate",
        "Production deployments that were change failures (failed, rolled back, followed by an "
        "incident, or remediated) out of all that finished, over 30 days.",
        CFR_30D,
        "percentunit",
        1,
    ),
    (
        "Failed deployment recovery time (median)",
        "Median time from the start of a run of change failures to the successful deployment "
        "that ended it, over 30 days.",
        quantile_of(
            "repository_environment_le:dora_deployment_recovery_seconds_bucket:increase_30d", SEL
        ),
        "s",
        None,
    ),
]

TIERS = [
    (
        "Deployment frequency tier",
        "Tier of the median repository's deployments a day: elite more than daily, high daily "
        "to weekly, medium weekly to monthly, low less.",
        'environment:dora_deployment_frequency:tier_30d{environment=~"$environment"}',
    ),
    (
        "Lead time tier",
        "Elite under a day, high under a week, medium under a month (30 days), low more.",
        'environment:dora_lead_time:tier_30d{environment=~"$environment"}',
    ),
    (
        "Change failure rate tier",
        "Elite under 15%, high under 30%, medium under 45%, low more.",
        'environment:dora_change_failure_rate:tier_30d{environment=~"$environment"}',
    ),
    (
        "Recovery time tier",
        "Failed-deployment recovery: elite under an hour, high under a day, medium under a "
        "week, low more.",
        'environment:dora_deployment_recovery:tier_30d{environment=~"$environment"}',
    ),
]

BY_REPOSITORY_ENVIRONMENT = (
    "One line per repository and environment.",
    "{{repository}} {{environment}}",
)

TRENDS = [
    (
        "Deployments a day (7-day window)",
        f"sum by (repository) (repository_environment:dora_deployments:per_day_7d{{{SEL}}})",
        "short",
        # Added up across the chosen environments: a repository's deployments, wherever they went.
        (
            "One line per repository: its deployments to the chosen environments added up.",
            "{{repository}}",
        ),
    ),
    (
        "Lead time, median (7-day window)",
        f"repository_environment:dora_lead_time_seconds:p50_7d{{{SEL}}}",
        "s",
        BY_REPOSITORY_ENVIRONMENT,
    ),
    (
        "Change failure rate (7-day window)",
        f"repository_environment:dora_change_failure_rate:ratio_7d{{{SEL}}}",
        "percentunit",
        BY_REPOSITORY_ENVIRONMENT,
    ),
    (
        "Failed deployment recovery, median (7-day window)",
        f"repository_environment:dora_deployment_recovery_seconds:p50_7d{{{SEL}}}",
        "s",
        BY_REPOSITORY_ENVIRONMENT,
    ),
]

TABLE_COLUMNS = [
    ("A", "Deployments a day", f"repository_environment:dora_deployments:per_day_30d{{{SEL}}}",
     "short"),
    ("B", "Lead time p50", f"repository_environment:dora_lead_time_seconds:p50_30d{{{SEL}}}",
     "s"),
    ("C", "Lead time p90", f"repository_environment:dora_lead_time_seconds:p90_30d{{{SEL}}}",
     "s"),
    ("D", "Change failure rate",
     f"repository_environment:dora_change_failure_rate:ratio_30d{{{SEL}}}", "percentunit"),
    ("E", "Recovery p50",
     f"repository_environment:dora_deployment_recovery_seconds:p50_30d{{{SEL}}}", "s"),
    ("F", "Frequency tier", f"repository_environment:dora_deployment_frequency:tier_30d{{{SEL}}}",
     "tier"),
    ("G", "Lead time tier", f"repository_environment:dora_lead_time:tier_30d{{{SEL}}}", "tier"),
    ("H", "Failure rate tier",
     f"repository_environment:dora_change_failure_rate:tier_30d{{{SEL}}}", "tier"),
    ("I", "Recovery tier", f"repository_environment:dora_deployment_recovery:tier_30d{{{SEL}}}",
     "tier"),
]  # fmt: skip

NO_LEAD_TIME = (
    f"sum by (repository, environment) (\n"
    f'  repository_environment_status:dora_deployments:increase_7d{{status="success", {SEL}}}\n'
    f") > 0\n"
    f"unless on (repository, environment)\n"
    f'repository_environment_le:dora_lead_time_seconds_bucket:increase_7d{{le="+Inf"}} > 0'
)


def key_panels(y: int) -> list[dict[str, Any]]:
    panels = [row("The four keys: last 30 days against the 30 days before", y)]
    for index, (title, description, expr, unit, decimals) in enumerate(KEYS):
        panels.append(
            panel(
                "stat",
                title,
                description,
                compared(expr),
                (6 * index, y + 1, 6, 5),
                unit=unit,
                decimals=decimals,
                options=STAT_OPTIONS,
            )
        )
    panels.append(row("Performance tiers of the fleet (all repositories, 30 days)", y + 6))
    for index, (title, description, expr) in enumerate(TIERS):
        panels.append(
            panel(
                "stat",
                title,
                description,
                compared(expr),
                (6 * index, y + 7, 6, 4),
                mappings=TIER_MAPPINGS,
                options={**STAT_OPTIONS, "colorMode": "background"},
            )
        )
    return panels


def flow_panels(y: int) -> list[dict[str, Any]]:
    stats = [
        ("Pull request cycle time (median)", "From opening to merge, over 30 days.",
         quantile_of("repository_le:github_pull_request_cycle_time_seconds_bucket:increase_30d",
                     REPO)),
        ("Merge to deploy (median)", "From merge to the successful deployment, over 30 days.",
         quantile_of("repository_environment_le:dora_merge_to_deploy_seconds_bucket:increase_30d",
                     SEL)),
        ("Incident recovery time (median)", "From opening to resolution, over 30 days.",
         quantile_of("repository_le:dora_incident_recovery_seconds_bucket:increase_30d", REPO)),
    ]  # fmt: skip
    panels = [row("Where lead time and recovery go", y)]
    for index, (title, description, expr) in enumerate(stats):
        panels.append(
            panel(
                "stat",
                title,
                description,
                compared(expr),
                (8 * index, y + 1, 8, 5),
                unit="s",
                options=STAT_OPTIONS,
            )
        )
    return panels


def trend_panels(y: int) -> list[dict[str, Any]]:
    panels = [row("Trends by repository (7-day windows over the time range)", y)]
    for index, (title, expr, unit, (description, legend)) in enumerate(TRENDS):
        x, dy = (index % 2) * 12, (index // 2) * 8
        panels.append(
            panel(
                "timeseries",
                title,
                description,
                [target(expr, legend)],
                (x, y + 1 + dy, 12, 8),
                unit=unit,
                options=TIMESERIES_OPTIONS,
            )
        )
    return panels


def failure_panels(y: int) -> list[dict[str, Any]]:
    """Change failures stacked by cause, and the rework rate beside the change failure rate."""
    by_cause = panel(
        "timeseries",
        "Change failures by cause (7-day window)",
        "Production deployments counted as change failures over the last 7 days, stacked by "
        "their first cause: failed, rolled_back, incident, remediated.",
        [
            target(
                f"sum by (cause) ({CHANGE_FAILURES.format(w='7d')}{{{SEL}}})",
                "{{cause}}",
            )
        ],
        (0, y + 1, 12, 8),
        options=TIMESERIES_OPTIONS,
    )
    by_cause["fieldConfig"]["defaults"]["custom"].update(
        {"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 60, "drawStyle": "bars"}
    )
    rates = panel(
        "timeseries",
        "Change failure rate and rework rate (7-day window)",
        "Change failures, and unplanned deployments (reverts, hotfixes, restoring service, "
        "during an incident), each out of the production deployments of the last 7 days.",
        [
            target(
                share_of_deployments(CHANGE_FAILURES.format(w="7d"), "7d"),
                "change failure rate",
                "A",
            ),
            target(share_of_deployments(REWORK.format(w="7d"), "7d"), "rework rate", "B"),
        ],
        (12, y + 1, 12, 8),
        unit="percentunit",
        options=TIMESERIES_OPTIONS,
    )
    latest = panel(
        "timeseries",
        "Change failures with their deployment and fix (exemplars)",
        "Change failures as they are counted, by cause. Each point's exemplar names the failing "
        "deployment's commit (sha) and the commit of the deployment that fixed it (fixed_by); "
        "hover it. Exemplars need Prometheus's exemplar storage and an OpenMetrics scrape.",
        [
            target(
                f"sum by (cause) (increase(dora_change_failures_total{{{SEL}}}[$__rate_interval]))",
                "{{cause}}",
                exemplar=True,
            )
        ],
        (0, y + 9, 24, 8),
        options=TIMESERIES_OPTIONS,
    )
    return [row("Change failures and rework", y), by_cause, rates, latest]


def table_panel(y: int) -> list[dict[str, Any]]:
    overrides = []
    rename = {}
    for ref, name, _, unit in TABLE_COLUMNS:
        rename[f"Value #{ref}"] = name
        properties: list[dict[str, Any]] = (
            [{"id": "mappings", "value": TIER_MAPPINGS},
             {"id": "custom.cellOptions", "value": {"type": "color-background"}}]
            if unit == "tier" else [{"id": "unit", "value": unit}]
        )  # fmt: skip
        overrides.append({"matcher": {"id": "byName", "options": name}, "properties": properties})
    transformations = [
        {"id": "merge", "options": {}},
        {
            "id": "organize",
            "options": {"excludeByName": {"Time": True}, "renameByName": rename},
        },
    ]
    return [
        row("Repositories (30 days)", y),
        panel(
            "table",
            "Repositories",
            "The keys and tiers of each selected repository and environment over 30 days. An "
            "empty cell means no data in the window (no deployment, no lead time observed): such "
            "a repository gets no tier rather than a flattering one.",
            [instant(expr, ref) for ref, _, expr, _ in TABLE_COLUMNS],
            (0, y + 1, 24, 10),
            overrides=overrides,
            transformations=transformations,
            options={
                "showHeader": True,
                "sortBy": [{"displayName": "Deployments a day", "desc": True}],
            },
        ),
    ]


def quality_panels(y: int) -> list[dict[str, Any]]:
    stopped = (
        "time() - max by (repository) (\n"
        f"  max_over_time(observer_last_event_timestamp_seconds{{{REPO}}}[30d])\n"
        ")"
    )
    rejected = [
        target('sum by (result) (rate(observer_webhook_deliveries_total'
               '{result=~"unauthorized|malformed|too_large"}[$__rate_interval]))',
               "webhook {{result}}", "A"),
        target('sum by (result) (rate(observer_api_events_total'
               '{result=~"unauthorized|invalid"}[$__rate_interval]))', "api {{result}}", "B"),
    ]  # fmt: skip
    enrichment = [
        target("sum by (reason) (rate(observer_enrichment_failures_total[$__rate_interval]))",
               "failed: {{reason}}", "A"),
        target("sum(rate(observer_enrichment_dropped_total[$__rate_interval]))",
               "dropped (queue full)", "B"),
        target("sum(rate(observer_enrichment_compare_truncated_total[$__rate_interval]))",
               "compare truncated", "C"),
    ]  # fmt: skip
    github = [
        target("min(observer_github_rate_limit_remaining)", "rate limit remaining", "A"),
        target("sum(observer_enrichment_queue_depth)", "enrichment queue", "B"),
    ]
    health = [
        target("count by (version) (observer_build_info)", "replicas running {{version}}", "A"),
        target("sum by (label) (increase(observer_label_values_folded_total[$__range]))",
               "{{label}} values folded into other", "B"),
    ]  # fmt: skip
    return [
        row("Data quality", y),
        panel(
            "table",
            "Repositories by time since their last event",
            "Seconds since observer last accepted an event for each repository (any replica, "
            "last 30 days). A repository that stopped sending turns orange after a day and red "
            "after a week.",
            [instant(stopped, "A")],
            (0, y + 1, 8, 9),
            unit="s",
            thresholds=[(None, "green"), (86400, "orange"), (604800, "red")],
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "Value"},
                    "properties": [{"id": "custom.cellOptions", "value": {"type": "color-text"}}],
                }
            ],
            transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True}}}],
            options={"sortBy": [{"displayName": "Value", "desc": True}]},
        ),
        panel(
            "table",
            "Deployments that got no lead time",
            "Successful deployments in the last 7 days of repositories with no lead time observed "
            "in that time: the deployment carried no commit, enrichment failed or was dropped, or "
            "the environment is not production.",
            [instant(NO_LEAD_TIME, "A")],
            (8, y + 1, 8, 9),
            transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True}}}],
        ),
        panel(
            "timeseries",
            "Rejected deliveries and events",
            "Requests refused per second: a wrong secret or token (unauthorized), a malformed or "
            "invalid body, or one over MAX_BODY_BYTES.",
            rejected,
            (16, y + 1, 8, 9),
            unit="reqps",
            options=TIMESERIES_OPTIONS,
        ),
        panel(
            "timeseries",
            "Lead-time enrichment failures",
            "Deployments whose lead time could not be computed, per second, by reason.",
            enrichment,
            (0, y + 10, 8, 8),
            unit="ops",
            options=TIMESERIES_OPTIONS,
        ),
        panel(
            "timeseries",
            "GitHub API",
            "Requests left in the GitHub API rate limit, and deployments waiting for enrichment.",
            github,
            (8, y + 10, 8, 8),
            options=TIMESERIES_OPTIONS,
        ),
        panel(
            "timeseries",
            "Replicas and label caps",
            "Replicas scraped, by version, and events whose repository or environment was folded "
            "into 'other' over the time range.",
            health,
            (16, y + 10, 8, 8),
            options=TIMESERIES_OPTIONS,
        ),
    ]


def variables() -> list[dict[str, Any]]:
    def query_variable(name: str, label: str, query: str, **extra: Any) -> dict[str, Any]:
        return {
            "type": "query",
            "name": name,
            "label": label,
            "datasource": DATASOURCE,
            "definition": query,
            "query": {"query": query, "refId": f"{name}-variable"},
            "refresh": 2,
            "sort": 1,
            "regex": "",
            **extra,
        }

    return [
        {
            "type": "datasource",
            "name": "datasource",
            "label": "Data source",
            "query": "prometheus",
            "current": {},
            "hide": 0,
        },
        query_variable(
            "environment",
            "Environment",
            "label_values(dora_deployments_total, environment)",
            multi=False,
            includeAll=False,
            current={"text": "production", "value": "production"},
        ),
        query_variable(
            "repository",
            "Repository",
            'label_values(dora_deployments_total{environment=~"$environment"}, repository)',
            multi=True,
            includeAll=True,
            allValue=".*",
            current={"text": "All", "value": "$__all"},
        ),
    ]


def dashboard() -> dict[str, Any]:
    panels = (
        key_panels(0)
        + flow_panels(11)
        + trend_panels(17)
        + failure_panels(34)
        + table_panel(51)
        + quality_panels(62)
    )
    for number, item in enumerate(panels, start=1):
        item["id"] = number
    return {
        "uid": "observer-dora",
        "title": "DORA metrics (observer)",
        "description": "The four DORA keys from observer's metrics and recording rules.",
        "tags": ["dora", "observer"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-30d", "to": "now"},
        "refresh": "5m",
        "timezone": "browser",
        "templating": {"list": variables()},
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [],
        "panels": panels,
    }


# --- The team view ----------------------------------------------------------------------------

TEAM_OUTPUT = OUTPUT.parent / "observer-teams.json"
TEAM = 'team=~"$team"'
ENV = 'environment=~"$environment"'
# Keeps the repository series of the repositories the selected team owns.
OWNED = f"and on (repository) observer_repository_team_info{{{TEAM}}}"


def owned(selector: str) -> str:
    return f"({selector} {OWNED})"


TEAM_FAILED = CHANGE_FAILURES.format(w="30d") + "{" + ENV + "}"
TEAM_FINISHED = DEPLOYMENTS_30D + "{" + ENV + "}"

TEAM_KEYS = [
    (
        "Deployment frequency",
        "Successful deployments a day over 30 days, summed over the team's repositories.",
        f"sum{owned(f'repository_environment:dora_deployments:per_day_30d{{{ENV}}}')}",
        "short",
        2,
    ),
    (
        "Lead time for changes (median)",
        "Median time from a change's first commit to its successful deployment, over 30 days, "
        "in the team's repositories.",
        "histogram_quantile(0.5, sum by (le) "
        + owned(f"repository_environment_le:dora_lead_time_seconds_bucket:increase_30d{{{ENV}}}")
        + ")",
        "s",
        None,
    ),
    (
        "Change failure rate",
        "Change failures (failed, rolled back, followed by an incident, or remediated) out of "
        "the deployments that finished in the team's repositories, over 30 days.",
        f"(sum{owned(TEAM_FAILED)} or vector(0))\n/\n(sum{owned(TEAM_FINISHED)} > 0)",
        "percentunit",
        1,
    ),
    (
        "Failed deployment recovery time (median)",
        "Median time from a failed deployment to the next successful one in the team's "
        "repositories, over 30 days.",
        "histogram_quantile(0.5, sum by (le) "
        + owned(
            f"repository_environment_le:dora_deployment_recovery_seconds_bucket:increase_30d{{{ENV}}}"
        )
        + ")",
        "s",
        None,
    ),
]

REWORK_30D = "repository_kind:dora_rework:increase_30d"
MERGED_30D = 'repository_action:github_pull_requests:increase_30d{action="merged"}'
TEAM_FLOW = [
    (
        "Rework rate",
        "Merged pull requests that revert one or carry the hotfix label, out of all merged "
        "pull requests in the team's repositories, over 30 days.",
        f"(sum{owned(REWORK_30D + '{}')} or vector(0))\n/\n(sum{owned(MERGED_30D)} > 0)",
        "percentunit",
    ),
    (
        "Pull request cycle time (median)",
        "From opening to merge, for pull requests by the team's members, over 30 days.",
        f"team:github_team_pull_request_cycle_time_seconds:p50_30d{{{TEAM}}}",
        "s",
    ),
    (
        "Time to first review (median)",
        "From opening (or ready for review) to the first review by someone else, for pull "
        "requests by the team's members, over 30 days.",
        f"team:github_team_pull_request_first_review_seconds:p50_30d{{{TEAM}}}",
        "s",
    ),
    (
        "Pull request size (median)",
        "Lines added plus deleted of the pull requests merged in the team's repositories, "
        "over 30 days.",
        "histogram_quantile(0.5, sum by (le) "
        + owned("increase(github_pull_request_size_lines_bucket[30d])")
        + ")",
        "short",
    ),
]

TEAM_TRENDS = [
    (
        "Pull requests by the team's members (weighted, per day)",
        "Opened, merged and closed unmerged, each counted by the member's weight.",
        f"sum by (action) (increase(github_team_pull_requests_total{{{TEAM}}}[1d]))",
        "{{action}}",
    ),
    (
        "Reviews in the team's repositories (per day)",
        "Submitted reviews by state.",
        f"sum by (state) {owned('increase(github_pull_request_reviews_total[1d])')}",
        "{{state}}",
    ),
    (
        "Rework in the team's repositories (per day)",
        "Merged reverts and hotfixes.",
        f"sum by (kind) {owned('increase(dora_rework_total[1d])')}",
        "{{kind}}",
    ),
    (
        "Deployments of the team's repositories (per day)",
        "Finished deployments to the selected environment, by status.",
        f"sum by (status) {owned(f'increase(dora_deployments_total{{{ENV}}}[1d])')}",
        "{{status}}",
    ),
]


def _survey(metric: str, expr: str) -> str:
    return expr.format(
        sum=f"sum(increase({metric}_sum{{{TEAM}}}[30d]))",
        count=f"sum(increase({metric}_count{{{TEAM}}}[30d]))",
        promoters=f'sum(increase({metric}_bucket{{{TEAM}, le="8.0"}}[30d]))',
        detractors=f'sum(increase({metric}_bucket{{{TEAM}, le="6.0"}}[30d]))',
    )


SURVEYS = [
    (
        "Satisfaction (average, 1 to 5)",
        "Mean of the team's anonymous survey answers over 30 days.",
        _survey("space_survey_satisfaction", "{sum}\n/\n({count} > 0)"),
        "short",
    ),
    (
        "Net promoter score",
        "Promoters (9 or 10) minus detractors (0 to 6), in percent of the answers over 30 "
        "days: from -100 to 100.",
        _survey(
            "space_survey_nps", "100 * ({count} - {promoters} - {detractors})\n/\n({count} > 0)"
        ),
        "short",
    ),
    (
        "Survey answers",
        "Answers received over 30 days; a team under MIN_TEAM_SIZE answers as 'other'.",
        _survey("space_survey_nps", "{count}"),
        "short",
    ),
]

TEAM_COLUMNS = [
    ("A", "Deployments a day", "team:dora_deployments:per_day_30d", "short"),
    ("B", "Change failure rate", "team:dora_change_failure_rate:ratio_30d", "percentunit"),
    ("C", "Rework rate", "team:dora_rework_rate:ratio_30d", "percentunit"),
    ("D", "Cycle time p50", "team:github_team_pull_request_cycle_time_seconds:p50_30d", "s"),
    ("E", "First review p50", "team:github_team_pull_request_first_review_seconds:p50_30d", "s"),
]


def team_panels() -> list[dict[str, Any]]:
    panels = [row("The team's four keys: last 30 days against the 30 days before", 0)]
    for index, (title, description, expr, unit, decimals) in enumerate(TEAM_KEYS):
        panels.append(
            panel("stat", title, description, compared(expr), (6 * index, 1, 6, 5), unit=unit,
                  decimals=decimals, options=STAT_OPTIONS)
        )  # fmt: skip
    panels.append(row("Rework, cycle time, reviews and size (30 days)", 6))
    for index, (title, description, expr, unit) in enumerate(TEAM_FLOW):
        panels.append(
            panel("stat", title, description, [target(expr, title)], (6 * index, 7, 6, 5),
                  unit=unit, decimals=2 if unit == "percentunit" else None, options=STAT_OPTIONS)
        )  # fmt: skip
    panels.append(row("Activity over the time range", 12))
    for index, (title, description, expr, legend) in enumerate(TEAM_TRENDS):
        x, dy = (index % 2) * 12, (index // 2) * 8
        panels.append(
            panel("timeseries", title, description, [target(expr, legend)], (x, 13 + dy, 12, 8),
                  options=TIMESERIES_OPTIONS)
        )  # fmt: skip
    panels.append(row("Pulse surveys (30 days)", 29))
    for index, (title, description, expr, unit) in enumerate(SURVEYS):
        panels.append(
            panel("stat", title, description, [target(expr, title)], (8 * index, 30, 8, 5),
                  unit=unit, decimals=1, options=STAT_OPTIONS)
        )  # fmt: skip
    rename = {f"Value #{ref}": name for ref, name, _, _ in TEAM_COLUMNS}
    overrides = [
        {
            "matcher": {"id": "byName", "options": name},
            "properties": [{"id": "unit", "value": unit}],
        }
        for _, name, _, unit in TEAM_COLUMNS
    ]
    panels += [
        row("Every team side by side (production, 30 days)", 35),
        panel(
            "table",
            "Teams",
            "Each team's figures from the recording rules. Teams under MIN_TEAM_SIZE are "
            "together as 'other'; a shared repository counts fully in each of its teams.",
            [instant(expr, ref) for ref, _, expr, _ in TEAM_COLUMNS],
            (0, 36, 24, 8),
            overrides=overrides,
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {"excludeByName": {"Time": True}, "renameByName": rename},
                },
            ],
            options={"showHeader": True},
        ),
    ]
    for number, item in enumerate(panels, start=1):
        item["id"] = number
    return panels


def team_dashboard() -> dict[str, Any]:
    base = dashboard()
    environment = next(v for v in base["templating"]["list"] if v["name"] == "environment")
    datasource = base["templating"]["list"][0]
    team = {
        **environment,
        "name": "team",
        "label": "Team",
        "definition": "label_values(observer_repository_team_info, team)",
        "query": {
            "query": "label_values(observer_repository_team_info, team)",
            "refId": "team-variable",
        },
        # One team at a time: a repository shared by two teams would be counted twice.
        "current": {},
    }
    return {
        **base,
        "uid": "observer-teams",
        "title": "DORA by team (observer)",
        "description": "One team's four keys, rework, pull request flow and pulse surveys, "
        "from the repositories it owns and the pull requests of its members. No person is in "
        "any series.",
        "tags": ["dora", "observer", "teams"],
        "templating": {"list": [datasource, environment, team]},
        "panels": team_panels(),
    }


OUTPUTS = {OUTPUT: dashboard, TEAM_OUTPUT: team_dashboard}


def render(build: Any = dashboard) -> str:
    return json.dumps(build(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the JSON is stale")
    args = parser.parse_args(argv)
    stale = 0
    for output, build in OUTPUTS.items():
        text = render(build)
        current = output.read_text() if output.exists() else ""
        if current == text:
            continue
        if args.check:
            sys.stderr.write(f"{output} is stale: run python examples/grafana/generate.py\n")
            stale += 1
            continue
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
