"""INCIDENT_ALERTS: PromQL's label matchers, read at start and matched as Prometheus matches."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from observer.settings import describe_error
from observer.sources.alertmanager.matchers import MatcherError, parse
from tests.conftest import make_settings

CRITICAL = {"alertname": "CheckoutErrorsHigh", "severity": "critical"}


@pytest.mark.parametrize(
    ("written", "labels", "expected"),
    [
        ('severity="critical"', CRITICAL, True),
        ('severity="crit"', CRITICAL, False),
        ('severity!="critical"', CRITICAL, False),
        ('severity!="warning"', CRITICAL, True),
        # Anchored at both ends, as Prometheus anchors regular expressions.
        ('severity=~"crit"', CRITICAL, False),
        ('severity=~"crit.*"', CRITICAL, True),
        ('severity=~"critical|page"', CRITICAL, True),
        ('severity=~"critical|page"', {"severity": "paged"}, False),
        ('severity!~"warn.*|info"', CRITICAL, True),
        ('severity!~"crit.*"', CRITICAL, False),
        # A missing label is the empty string, in Prometheus as here.
        ('team!="infra"', CRITICAL, True),
        ('team=""', CRITICAL, True),
        ('team=~".+"', CRITICAL, False),
        # Several: all must match; braces and spaces as in a PromQL selector.
        ('{severity="critical", alertname=~"Checkout.*"}', CRITICAL, True),
        ('severity="critical",alertname="Other"', CRITICAL, False),
        ("severity='critical'", CRITICAL, True),
        ("severity=~`crit\\w+`", CRITICAL, True),
        ('summary="say \\"hi\\""', {"summary": 'say "hi"'}, True),
        ("", CRITICAL, True),
    ],
)
def test_matchers_match_as_prometheus_does(
    written: str, labels: dict[str, str], expected: bool
) -> None:
    assert parse(written).matches(labels) is expected


@pytest.mark.parametrize(
    ("written", "says"),
    [
        ("severity=critical", "cannot read a matcher"),
        ('severity=="critical"', "cannot read a matcher"),
        ('severity="critical" alertname="x"', "expected ','"),
        ('severity=~"crit("', "not a regular expression"),
        ('1severity="critical"', "cannot read a matcher"),
    ],
)
def test_a_bad_matcher_is_one_clear_error(written: str, says: str) -> None:
    with pytest.raises(MatcherError, match=says):
        parse(written)


def test_a_bad_incident_alerts_setting_fails_at_start_naming_it() -> None:
    with pytest.raises(ValidationError) as raised:
        make_settings(incident_alerts='severity=~"crit("')
    line = describe_error(raised.value)
    assert "\n" not in line
    assert line.startswith("invalid configuration: INCIDENT_ALERTS ")
    assert "not a regular expression" in line


def test_the_default_takes_critical_and_page_alerts() -> None:
    matchers = parse(make_settings().incident_alerts)
    assert matchers.matches({"severity": "critical"})
    assert matchers.matches({"severity": "page"})
    assert not matchers.matches({"severity": "warning"})
    assert str(matchers) == 'severity=~"critical|page"'


def test_a_repository_label_must_be_a_label_name() -> None:
    with pytest.raises(ValidationError, match="alert_repository_label"):
        make_settings(alert_repository_label="repo-name")
