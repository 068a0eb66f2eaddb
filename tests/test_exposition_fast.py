"""The cached /metrics renderer: the same bytes as prometheus-client, scrape after scrape."""

from __future__ import annotations

import gc
import gzip
import math
import threading
import weakref
from collections.abc import Iterator

import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    ProcessCollector,
    Summary,
    generate_latest,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.registry import Collector

from observer.metrics.definitions import Metrics
from observer.metrics.exposition import Exposition, WithoutCreated
from tests.conftest import Service
from tests.exposition import Exposition as Scraped

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
PROMETHEUS = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,text/plain;q=0.3"
)
TRICKY = ('quote " here', "back\\slash", "new\nline", "ünïcødé ☃ 漢字", "", "org/plain")


def _metrics() -> Metrics:
    """The service's metrics without the collectors whose values move between two calls."""
    metrics = Metrics(CollectorRegistry())
    registry = metrics.registry
    for collector in list(registry._collector_to_names):
        if isinstance(collector, ProcessCollector | GCCollector):
            registry.unregister(collector)
    return metrics


def _populate(metrics: Metrics) -> None:
    for i in range(300):
        repository = f"{TRICKY[i % len(TRICKY)]}/{i}"
        metrics.deployments.labels(repository, "prod", "success").inc(i)
        metrics.last_event.labels(repository).set(1_700_000_000.5 + i)
    for i, repository in enumerate(TRICKY):
        lead_time = metrics.lead_time.labels(repository, 'env "x"')
        lead_time.observe(30)
        lead_time.observe(5000, {"sha": 'a"b\\c\nd', "pull_request": str(i)})
        metrics.pull_request_size.labels(repository).observe(120 + i)
    metrics.request_duration.labels("webhook").observe(0.003)
    metrics.commits_pushed.labels("org/plain").inc(2, {"sha": "c0ffee"})
    for value in (math.inf, -math.inf, math.nan, 1e300, 1.5e-300, 1234567.0, -5.0, -0.0):
        metrics.last_event.labels(f"special {value!r}").set(value)
    metrics.github_rate_limit_remaining.set(4999)
    metrics.enrichment_queue_depth.set(3)


def _assert_same(exposition: Exposition, registry: CollectorRegistry) -> None:
    # prometheus-client's rendering, less the *_created series the service leaves out.
    shown = WithoutCreated(registry)
    text, text_type = exposition.render("")
    assert (text, text_type) == (generate_latest(shown), choose_encoder("")[1])
    om, om_type = exposition.render(OPENMETRICS)
    assert (om, om_type) == (generate_openmetrics(shown), choose_encoder(OPENMETRICS)[1])
    assert exposition.fast


@pytest.fixture
def metrics() -> Metrics:
    metrics = _metrics()
    _populate(metrics)
    return metrics


def test_both_formats_are_byte_for_byte_prometheus_clients(metrics: Metrics) -> None:
    exposition = Exposition(metrics.registry)
    _assert_same(exposition, metrics.registry)
    om = exposition.render(OPENMETRICS)[0].decode()
    # The cases that matter are really there: escaped labels, exemplars, Go-style floats.
    assert 'repository="quote \\" here/0"' in om
    assert 'repository="new\\nline/2"' in om
    assert '# {pull_request="1",sha="a\\"b\\\\c\\nd"} 5000.0' in om
    assert "1.234567e+06" in om
    assert "-0.0" in om
    assert "NaN" in om


def test_a_second_scrape_shows_values_changed_since_the_first(metrics: Metrics) -> None:
    exposition = Exposition(metrics.registry)
    _assert_same(exposition, metrics.registry)
    metrics.deployments.labels("org/plain/5", "prod", "success").inc(7)
    metrics.last_event.labels("special 0.0").set(0.0)
    metrics.last_event.labels("special -0.0").set(0.0)
    metrics.last_event.labels("special nan").set(42)
    metrics.lead_time.labels("org/plain", 'env "x"').observe(90000, {"sha": "new"})
    metrics.pull_request_size.labels("org/plain").observe(7)
    metrics.enrichment_queue_depth.set(0)
    _assert_same(exposition, metrics.registry)
    after = Scraped(exposition.render("")[0].decode())
    assert after.value("dora_deployments_total", repository="org/plain/5", environment="prod",
                       status="success") == 12  # fmt: skip
    assert after.value("observer_enrichment_queue_depth") == 0
    om = exposition.render(OPENMETRICS)[0].decode()
    assert '# {sha="new"} 90000.0' in om


def test_a_gauge_back_to_zero_from_minus_zero_is_rendered_again(metrics: Metrics) -> None:
    exposition = Exposition(metrics.registry)
    gauge = metrics.last_event.labels("signed zero")
    gauge.set(-0.0)
    assert b'repository="signed zero"} -0.0\n' in exposition.render("")[0]
    gauge.set(0.0)
    assert b'repository="signed zero"} 0.0\n' in exposition.render("")[0]
    _assert_same(exposition, metrics.registry)


def test_removed_and_cleared_series_leave_the_exposition(metrics: Metrics) -> None:
    exposition = Exposition(metrics.registry)
    metrics.repository_team_info.labels("org/a", "platform").set(1)
    metrics.repository_team_info.labels("org/b", "web").set(1)
    _assert_same(exposition, metrics.registry)
    metrics.repository_team_info.clear()
    metrics.repository_team_info.labels("org/b", "mobile").set(1)
    metrics.deployments.remove("org/plain/5", "prod", "success")
    metrics.lead_time.remove("org/plain", 'env "x"')
    _assert_same(exposition, metrics.registry)
    text = exposition.render("")[0].decode()
    assert 'team="platform"' not in text
    assert 'team="mobile"' in text
    assert 'dora_deployments_total{environment="prod",repository="org/plain/5"' not in text


def test_series_cleared_are_not_kept_alive_by_the_cache(metrics: Metrics) -> None:
    exposition = Exposition(metrics.registry)
    children = [metrics.repository_team_info.labels(f"org/{i}", "team") for i in range(50)]
    exposition.render("")
    exposition.render(OPENMETRICS)
    gone = [weakref.ref(child) for child in children]
    del children
    metrics.repository_team_info.clear()
    exposition.render("")
    gc.collect()
    assert all(ref() is None for ref in gone)


def test_a_series_removed_then_recreated_starts_from_zero(metrics: Metrics) -> None:
    exposition = Exposition(metrics.registry)
    metrics.deployments.labels("org/again", "prod", "success").inc(41)
    metrics.lead_time.labels("org/again", "prod").observe(60, {"sha": "old"})
    _assert_same(exposition, metrics.registry)
    metrics.deployments.remove("org/again", "prod", "success")
    metrics.lead_time.remove("org/again", "prod")
    metrics.deployments.labels("org/again", "prod", "success")
    metrics.lead_time.labels("org/again", "prod")
    _assert_same(exposition, metrics.registry)
    assert b'sha="old"' not in exposition.render(OPENMETRICS)[0]


def test_prometheus_accept_headers_get_prometheus_clients_answer(metrics: Metrics) -> None:
    exposition = Exposition(metrics.registry)
    for accept in (
        PROMETHEUS,
        "text/plain;version=1.0.0;escaping=allow-utf-8",
        "application/openmetrics-text;version=1.0.0;escaping=dots",
        "application/openmetrics-text;version=2.0.0",
        "application/openmetrics-text",
        "text/html",
    ):
        encoder, content_type = choose_encoder(accept)
        expected = (encoder(WithoutCreated(metrics.registry)), content_type)
        assert exposition.render(accept) == expected, accept


class _Custom(Collector):
    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("custom_value", "A collector of its own.", value=2.5)


class _SubGauge(Gauge):
    pass


def test_metrics_it_does_not_know_still_render(metrics: Metrics) -> None:
    registry = metrics.registry
    Summary("custom_summary_seconds", "A summary.", ["kind"], registry=registry).labels(
        "x"
    ).observe(1.5)
    registry.register(_Custom())
    _SubGauge("custom_subclass", "A gauge subclass.", registry=registry).set(3)
    computed = Gauge("custom_computed", "A gauge given a function.", ["a"], registry=registry)
    computed.labels("b").set_function(lambda: 7.0)
    exposition = Exposition(registry)
    _assert_same(exposition, registry)
    text = exposition.render("")[0].decode()
    for line in (
        'custom_summary_seconds_sum{kind="x"} 1.5',
        "custom_value 2.5",
        "custom_subclass 3.0",
        'custom_computed{a="b"} 7.0',
    ):
        assert line in text


def test_created_series_are_left_out_of_this_exposition_only(metrics: Metrics) -> None:
    other = CollectorRegistry()
    Counter("other_jobs", "A counter of another registry in the process.", registry=other).inc()
    exposition = Exposition(metrics.registry)
    for accept in ("", OPENMETRICS):
        assert b"_created" not in exposition.render(accept)[0]
    # The service's choice does not reach the other registries of the process.
    assert "other_jobs_created" in generate_latest(other).decode()
    assert "other_jobs_created" in generate_openmetrics(other).decode()
    names = {sample.name for family in metrics.registry.collect() for sample in family.samples}
    assert "dora_deployments_created" in names


def test_series_added_while_rendering_do_not_break_the_scrape(metrics: Metrics) -> None:
    exposition = Exposition(metrics.registry)
    stop = threading.Event()

    def add() -> None:
        i = 0
        while not stop.is_set() and i < 1000:
            metrics.deployments.labels(f"org/new{i}", "prod", "success").inc()
            metrics.lead_time.labels(f"org/new{i}", "prod").observe(i)
            i += 1

    adder = threading.Thread(target=add)
    adder.start()
    try:
        for _ in range(10):
            assert exposition.render(OPENMETRICS)[0].endswith(b"\n# EOF\n")
    finally:
        stop.set()
        adder.join()
    _assert_same(exposition, metrics.registry)


def test_the_endpoint_serves_every_format_and_follows_new_counts(service: Service) -> None:
    service.deliver_fixture("deployment_status_success")
    plain = service.client.get("/metrics")
    assert plain.headers["content-type"].startswith("text/plain")
    before = Scraped(plain.text)
    service.deliver_fixture("deployment_status_success")
    service.deliver_fixture("deployment_status_failure")
    after = Scraped(service.client.get("/metrics").text)
    moved = {
        key: value for key, value in after.domain().items() if before.samples.get(key) != value
    }
    assert moved, "a second scrape must show the deliveries made since the first"

    zipped = service.client.get(
        "/metrics", headers={"Accept": PROMETHEUS, "Accept-Encoding": "gzip"}
    )
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["content-type"].startswith("application/openmetrics-text")
    # The test client inflates the body; the parser reads the OpenMetrics text back.
    families = {family.name: family for family in parse_om(zipped.text)}
    deliveries = families["observer_webhook_deliveries"]
    assert sum(sample.value for sample in deliveries.samples) == 3

    raw = service.client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert Scraped(raw.text).samples.keys() == after.samples.keys()

    restricted = service.client.get(
        "/metrics", params={"name[]": "dora_deployments_total"}, headers={"Accept": OPENMETRICS}
    )
    names = {family.name for family in parse_om(restricted.text)}
    assert names == {"dora_deployments"}


def test_the_gzipped_body_is_the_exposition(service: Service) -> None:
    service.deliver_fixture("deployment_status_success")
    for accept in ("", OPENMETRICS):
        headers = {"Accept": accept, "Accept-Encoding": "gzip"}
        with service.client.stream("GET", "/metrics", headers=headers) as response:
            assert response.headers["content-encoding"] == "gzip"
            body = gzip.decompress(b"".join(response.iter_raw())).decode()
        if accept:
            assert body.endswith("# EOF\n")
            assert "dora_deployments" in {family.name for family in parse_om(body)}
        else:
            assert Scraped(body).domain()
