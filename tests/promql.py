"""What the tests of the rules and the dashboard share: the Prometheus tools and metric names."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import CollectorRegistry

from observer.metrics.definitions import Metrics

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_EXAMPLES = ROOT / "examples" / "prometheus"
RULE_FILE = PROMETHEUS_EXAMPLES / "rules" / "observer.rules.yml"
RULE_TESTS = sorted((PROMETHEUS_EXAMPLES / "tests").glob("*.test.yml"))
GENERATOR = PROMETHEUS_EXAMPLES / "generate.py"
PROMETHEUS_RULE = ROOT / "examples" / "k8s" / "prometheusrule.yaml"

# Series that Prometheus itself writes and that rules and dashboards may read.
PROMETHEUS_SERIES = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE"})


def require_binary(name: str, package: str = "prometheus") -> str:
    """The binary's path; skipped when it is missing, unless CI is set, where that fails."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (Debian: apt-get install {package})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}, and CI must run these tests")
    pytest.skip(message)


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, **kwargs)


def exported_series() -> frozenset[str]:
    """Every series name the service can export, read from its own metric definitions."""
    registry = CollectorRegistry()
    # Exported once GitHub has reported a value; absent before.
    Metrics(registry).github_rate_limit_remaining.set(0)
    names = set()
    for family in registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
        elif family.type == "info":
            names.add(f"{family.name}_info")
        else:
            names.add(family.name)
    return frozenset(names)


def load_rule_groups(path: Path = RULE_FILE) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(path.read_text())["groups"]
    return groups


def rules() -> Iterator[dict[str, Any]]:
    for group in load_rule_groups():
        yield from group["rules"]


def recorded_series() -> frozenset[str]:
    return frozenset(rule["record"] for rule in rules() if "record" in rule)


def selectors(node: Any) -> Iterator[Any]:
    """Every vector selector in a parsed PromQL expression."""
    if isinstance(node, promql_parser.VectorSelector):
        yield node
    elif isinstance(node, promql_parser.MatrixSelector):
        yield node.vector_selector
    elif isinstance(node, promql_parser.Call):
        for argument in node.args:
            yield from selectors(argument)
    elif isinstance(node, promql_parser.BinaryExpr):
        yield from selectors(node.lhs)
        yield from selectors(node.rhs)
    elif isinstance(node, promql_parser.AggregateExpr):
        yield from selectors(node.expr)
        if node.param is not None:
            yield from selectors(node.param)
    elif isinstance(
        node, (promql_parser.ParenExpr, promql_parser.UnaryExpr, promql_parser.SubqueryExpr)
    ):
        yield from selectors(node.expr)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads; a selector without a name counts as ``{...}``."""
    names = set()
    for selector in selectors(promql_parser.parse(expr)):
        if selector.name:
            names.add(selector.name)
        else:
            names.add(str(selector))
    return names


def promtool_check_expressions(promtool: str, expressions: dict[str, str], tmp: Path) -> None:
    """Parse each expression with Prometheus's own parser, as a recording rule in a file."""
    groups = [
        {
            "name": "parse",
            "rules": [
                {"record": f"check:expression:{index}", "expr": expr}
                for index, expr in enumerate(expressions.values())
            ],
        }
    ]
    path = tmp / "expressions.rules.yml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    result = run([promtool, "check", "rules", str(path)])
    if result.returncode != 0:
        where = "\n".join(f"  {index}: {name}" for index, name in enumerate(expressions))
        raise AssertionError(f"{result.stdout}{result.stderr}\nexpression numbers:\n{where}")


DASHBOARD = ROOT / "examples" / "grafana" / "dashboards" / "observer-dora.json"
TEAM_DASHBOARD = ROOT / "examples" / "grafana" / "dashboards" / "observer-teams.json"
DASHBOARD_GENERATOR = ROOT / "examples" / "grafana" / "generate.py"

# Values for the dashboard's variables, as Grafana would interpolate them.
VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "30d",
    "${repository}": ".*",
    "$repository": ".*",
    "${environment}": "production",
    "$environment": "production",
    "${team}": "payments",
    "$team": "payments",
}


def interpolate(expr: str, variables: dict[str, str] | None = None) -> str:
    for name, value in {**VARIABLES, **(variables or {})}.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"uninterpolated variable in {expr}"
    return expr


def dashboard_queries(path: Path = DASHBOARD) -> dict[str, str]:
    """Every PromQL expression of a dashboard, raw, keyed by where it is."""
    import json
    import re

    document = json.loads(path.read_text())
    queries = {}
    for panel in document["panels"]:
        for item in panel.get("targets", []):
            queries[f"panel {panel['title']!r} {item['refId']}"] = item["expr"]
    for variable in document["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"]
        # Grafana's label_values(selector, label): the selector is PromQL.
        match = re.fullmatch(r"label_values\((.*),\s*\w+\)", query, re.DOTALL)
        queries[f"variable {variable['name']}"] = match.group(1) if match else query
    return queries
