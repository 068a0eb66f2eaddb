"""The read-only endpoints: /metrics for Prometheus, health, readiness and the landing page."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Metric
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.testclient import TestClient

from observer import __version__
from observer.app import create_app
from observer.metrics.definitions import WEBHOOK_RESULTS
from observer.sources.github.adapter import GitHub
from tests.conftest import API_TOKEN, SECRET, Service, make_settings
from tests.exposition import CONTRACT_BUCKETS, Exposition
from tests.test_api_event import deployment


def test_metrics_are_prometheus_text_by_default(service: Service) -> None:
    response = service.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    exposition = Exposition(response.text)
    assert (
        exposition.get(
            "observer_build_info", version=__version__, python=exposition_python(exposition)
        )
        == 1
    )


def exposition_python(exposition: Exposition) -> str:
    for name, labels in exposition.samples:
        if name == "observer_build_info":
            return dict(labels)["python"]
    raise AssertionError("no observer_build_info")


def test_metrics_are_openmetrics_when_asked(service: Service) -> None:
    service.push_events(deployment())
    response = service.client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    assert 'dora_deployments_total{environment="production",repository="octo/app",' in (
        response.text
    )


def test_metrics_are_gzipped_when_asked(service: Service) -> None:
    response = service.client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    # The test client decodes transparently; the raw bytes must be gzip too.
    assert "observer_build_info" in response.text
    raw = gzip.compress(response.content)
    assert gzip.decompress(raw) == response.content


def test_every_domain_metric_is_declared_with_help_and_type(service: Service) -> None:
    text = service.client.get("/metrics").text
    for name, kind in [
        ("dora_deployments", "counter"),
        ("dora_lead_time_seconds", "histogram"),
        ("dora_merge_to_deploy_seconds", "histogram"),
        ("dora_deployment_recovery_seconds", "histogram"),
        ("dora_incidents_opened", "counter"),
        ("dora_incident_recovery_seconds", "histogram"),
        ("github_pull_requests", "counter"),
        ("github_pull_request_cycle_time_seconds", "histogram"),
        ("github_commits_pushed", "counter"),
        ("observer_webhook_deliveries", "counter"),
        ("observer_api_events", "counter"),
    ]:
        exposed = name + "_total" if kind == "counter" else name
        assert f"# TYPE {exposed} {kind}" in text
        assert f"# HELP {exposed} " in text


def test_delivery_outcomes_exist_from_the_start(service: Service) -> None:
    metrics = service.metrics()
    for event in (*GitHub(make_settings()).events, "other"):
        for result in WEBHOOK_RESULTS:
            assert (
                metrics.value(
                    "observer_webhook_deliveries_total", source="github", event=event, result=result
                )
                == 0
            )


def test_histograms_use_the_contract_buckets(service: Service) -> None:
    service.push_events(deployment(status="failure", timestamp="2026-11-23T09:00:00Z"))
    service.push_events(deployment())
    text = service.client.get("/metrics").text
    buckets = [
        float(line.split('le="')[1].split('"')[0])
        for line in text.splitlines()
        if line.startswith("dora_deployment_recovery_seconds_bucket")
    ]
    assert buckets == [*CONTRACT_BUCKETS, float("inf")]


def test_secrets_never_reach_the_metrics(service: Service) -> None:
    service.push_events(deployment())
    text = service.client.get("/metrics").text
    assert SECRET not in text and API_TOKEN not in text


def test_health_and_readiness(service: Service) -> None:
    assert service.client.get("/healthz").json() == {"status": "ok"}
    ready = service.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


def test_landing_page_lists_the_endpoints_and_version(service: Service) -> None:
    response = service.client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    for text in ("/webhook", "/api/event", "/metrics", "/healthz", "/readyz", __version__):
        assert text in response.text


def test_wrong_methods_and_paths_are_4xx(service: Service) -> None:
    assert service.client.get("/webhook").status_code == 405
    assert service.client.get("/api/event").status_code == 405
    assert service.client.post("/healthz").status_code == 405
    assert service.client.get("/nope").status_code == 404


def test_metrics_can_be_restricted_by_name(service: Service) -> None:
    response = service.client.get("/metrics", params={"name[]": "observer_build_info"})
    assert "observer_build_info" in response.text
    assert "dora_deployments_total" not in response.text


class _HeldCollector(Collector):
    """Holds a scrape in collect() until told the webhook was answered, or 5 s have passed."""

    def __init__(self) -> None:
        # Off until the test arms it: registration collects once to read the names.
        self.armed = False
        self.collecting = threading.Event()
        self.webhook_answered = threading.Event()
        self.answered_during_collect: bool | None = None

    def collect(self) -> Iterator[Metric]:
        if self.armed:
            self.collecting.set()
            self.answered_during_collect = self.webhook_answered.wait(timeout=5)
        yield GaugeMetricFamily("held_scrape", "A collector that holds the scrape.", value=1)


def test_a_webhook_is_answered_while_a_scrape_renders() -> None:
    registry = CollectorRegistry()
    held = _HeldCollector()
    registry.register(held)
    order: list[str] = []
    with TestClient(create_app(make_settings(), registry)) as client:
        service = Service(client, make_settings())

        def scrape() -> None:
            response = client.get("/metrics", headers={"Accept-Encoding": "gzip"})
            assert "held_scrape 1.0" in response.text
            order.append("scrape")

        held.armed = True
        scraper = threading.Thread(target=scrape)
        scraper.start()
        assert held.collecting.wait(timeout=10)
        response = service.deliver_fixture("deployment_status_success")
        assert response.status_code == 200
        order.append("webhook")
        held.webhook_answered.set()
        scraper.join(timeout=10)
    assert order == ["webhook", "scrape"]
    assert held.answered_during_collect is True
