"""The Prometheus rules: valid for promtool, unit-tested rule by rule, generated from one source."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import promql_parser
import yaml

from observer.settings import Settings
from tests.promql import (
    GENERATOR,
    PROMETHEUS_EXAMPLES,
    PROMETHEUS_RULE,
    PROMETHEUS_SERIES,
    RULE_FILE,
    RULE_TESTS,
    exported_series,
    load_rule_groups,
    metric_names,
    recorded_series,
    require_binary,
    rules,
    run,
)


def test_promtool_accepts_the_rule_file() -> None:
    promtool = require_binary("promtool")
    result = run([promtool, "check", "rules", str(RULE_FILE)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    promtool = require_binary("promtool")
    assert RULE_TESTS, "no promtool unit tests found"
    # The test files name the rule file relative to themselves.
    result = run(
        [promtool, "test", "rules", *(path.name for path in RULE_TESTS)],
        cwd=RULE_TESTS[0].parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout + result.stderr


def test_generated_rule_files_are_current() -> None:
    result = run([sys.executable, str(GENERATOR), "--check"])
    assert result.returncode == 0, (
        "the committed rules differ from examples/prometheus/generate.py; run it and commit "
        "the outputs\n" + result.stderr
    )


def test_the_prometheus_rule_holds_the_same_groups_as_the_rule_file() -> None:
    document = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert document["apiVersion"] == "monitoring.coreos.com/v1"
    assert document["kind"] == "PrometheusRule"
    assert document["spec"]["groups"] == load_rule_groups()


def _unit_tests() -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text()) for path in RULE_TESTS]


def test_every_recording_rule_has_a_unit_test() -> None:
    tested: set[str] = set()
    for document in _unit_tests():
        for group in document["tests"]:
            for case in group.get("promql_expr_test", []):
                tested |= metric_names(case["expr"])
                tested |= {
                    sample["labels"].split("{")[0]
                    for sample in case.get("exp_samples") or []
                    if "labels" in sample
                }
    untested = sorted(recorded_series() - tested)
    assert not untested, f"recording rules without a promql_expr_test: {untested}"


def test_every_alert_has_a_unit_test_that_expects_it_to_fire() -> None:
    firing: set[str] = set()
    for document in _unit_tests():
        for group in document["tests"]:
            for case in group.get("alert_rule_test", []):
                if case.get("exp_alerts"):
                    firing.add(case["alertname"])
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert alerts, "no alerts found"
    assert not sorted(alerts - firing), "alerts never shown firing in a unit test"


def test_every_alert_has_a_severity_a_summary_and_a_runbook() -> None:
    for rule in rules():
        if "alert" not in rule:
            continue
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        annotations = rule["annotations"]
        for key in ("summary", "description", "runbook"):
            assert annotations.get(key, "").strip(), f"{rule['alert']} has no {key}"
        assert "\n" not in annotations["runbook"], f"{rule['alert']}: runbook is one line"


def test_rules_read_only_what_the_service_exports_or_the_rules_record() -> None:
    known = exported_series() | recorded_series() | PROMETHEUS_SERIES
    for rule in rules():
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{rule.get('record') or rule.get('alert')} reads {unknown}"


def test_record_names_follow_level_metric_operations() -> None:
    for name in recorded_series():
        level, metric, operations = name.split(":")
        assert re.fullmatch(r"([a-z]+(_[a-z]+)*)?", level), name
        assert re.fullmatch(r"(dora|github)_[a-z_]+", metric), name
        assert re.fullmatch(r"[a-z0-9_]+", operations), name


def test_the_level_of_a_record_names_exactly_the_labels_it_keeps() -> None:
    # Read off the unit tests' expected samples, which Prometheus checked label by label.
    records = recorded_series()
    checked = set()
    for document in _unit_tests():
        for group in document["tests"]:
            for case in group.get("promql_expr_test", []):
                if case["expr"] not in records:
                    continue
                level = case["expr"].split(":")[0]
                for sample in case.get("exp_samples") or []:
                    labels = promql_parser.parse(sample["labels"]).matchers.matchers
                    assert {m.name for m in labels} == set(filter(None, level.split("_"))), sample[
                        "labels"
                    ]
                    checked.add(case["expr"])
    assert checked == records


def _production_matchers() -> set[str]:
    found = set()
    for rule in rules():
        for node_matcher in re.findall(r'environment=~"([^"]*)"', rule["expr"]):
            found.add(node_matcher)
    return found


def test_alerts_judge_the_environments_the_service_treats_as_production() -> None:
    matchers = _production_matchers()
    assert len(matchers) == 1, f"the rules select production in more than one way: {matchers}"
    # PromQL anchors its regular expressions; the service searches with its own anchors.
    promql = re.compile(f"^(?:{matchers.pop()})$")
    service = Settings(webhook_secret="x").production_environments
    for environment in [
        "production", "prod", "staging", "preprod", "prod-eu", "production-1", "dev",
        "qa", "preproduction", "productions", "",
    ]:  # fmt: skip
        assert bool(promql.search(environment)) == bool(service.search(environment)), environment


def test_every_alert_waits_a_stated_time() -> None:
    for rule in rules():
        if "alert" in rule:
            assert re.fullmatch(r"\d+[mh]", rule["for"]), rule["alert"]


def test_promtool_accepts_the_prometheus_rule_groups(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    spec = yaml.safe_load(PROMETHEUS_RULE.read_text())["spec"]
    path = tmp_path / "prometheusrule.rules.yml"
    path.write_text(yaml.safe_dump(spec))
    result = run([promtool, "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_example_prometheus_configuration_loads_the_rules() -> None:
    promtool = require_binary("promtool")
    result = run([promtool, "check", "config", str(PROMETHEUS_EXAMPLES / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rules found" in result.stdout
