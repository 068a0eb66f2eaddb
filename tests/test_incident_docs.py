"""The README's Alertmanager snippets are what Alertmanager and Prometheus accept, and they send
observer the alerts it counts."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from observer.sources.alertmanager.matchers import parse
from tests.conftest import FIXTURES, make_settings
from tests.promql import require_binary, run
from tests.readme import block


def test_the_receiver_and_route_are_a_valid_alertmanager_config(tmp_path: Path) -> None:
    amtool = require_binary("amtool", package="prometheus-alertmanager")
    config = block("yaml", "webhook_configs")
    token = tmp_path / "observer-token"
    token.write_text("token\n")
    path = tmp_path / "alertmanager.yml"
    path.write_text(config.replace("/etc/alertmanager/observer-token", str(token)))
    result = run([amtool, "check-config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr

    document = yaml.safe_load(config)
    webhook = document["receivers"][1]["webhook_configs"][0]
    assert webhook["url"].endswith("/alertmanager")
    assert webhook["send_resolved"] is True
    assert "credentials_file" in webhook["http_config"]["authorization"]


def test_the_route_sends_what_observer_counts_by_default() -> None:
    route = yaml.safe_load(block("yaml", "webhook_configs"))["route"]["routes"][0]
    routed = parse(", ".join(route["matchers"]))
    counted = parse(make_settings().incident_alerts)
    alert = json.loads((FIXTURES / "alertmanager" / "firing.json").read_text())["alerts"][0]
    assert routed.matches(alert["labels"]) and counted.matches(alert["labels"])
    for severity in ("warning", "info"):
        labels = {**alert["labels"], "severity": severity}
        assert not routed.matches(labels) and not counted.matches(labels)
    unlabelled = {k: v for k, v in alert["labels"].items() if k != "repository"}
    assert not routed.matches(unlabelled)


def test_the_alerting_rule_is_valid_and_names_the_repository(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    rules = block("yaml", "CheckoutErrorsHigh")
    path = tmp_path / "rules.yml"
    path.write_text(rules)
    result = run([promtool, "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    rule = yaml.safe_load(rules)["groups"][0]["rules"][0]
    labels = rule["labels"]
    assert parse(make_settings().incident_alerts).matches(labels)
    assert labels[make_settings().alert_repository_label] == "octo-org/checkout"
