"""/metrics survives a prometheus-client whose internals changed: it falls back to its generators.

Each internal the fast renderer reads is taken away in turn, as an upgrade that renames or
removes it would, but only from the renderer's point of view: prometheus-client's own code keeps
working, as the upgraded version's would.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import types
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest, values
from starlette.testclient import TestClient

from observer.app import create_app
from observer.metrics import exposition_cache
from tests.conftest import Service, make_settings
from tests.exposition import Exposition as Scraped

FALLBACKS = "observer_exposition_fallbacks_total"
FELL_BACK = (
    "/metrics is rendered by prometheus-client from now on: the fast renderer does not fit this "
    "prometheus-client"
)
# Figures of the process and its collector that move between two renderings.
MOVING = ("process_", "python_gc_")


def hide(monkeypatch: pytest.MonkeyPatch, owner: type | types.ModuleType, name: str) -> None:
    """Make ``owner``'s ``name`` missing for the fast renderer, and only for it."""
    if isinstance(owner, types.ModuleType):
        without = types.ModuleType(owner.__name__)
        without.__dict__.update({k: v for k, v in vars(owner).items() if k != name})
        aliases = [alias for alias, value in vars(exposition_cache).items() if value is owner]
        assert aliases, f"the renderer reads {owner.__name__} by another way"
        for alias in aliases:
            monkeypatch.setattr(exposition_cache, alias, without)
        return
    original = owner.__getattribute__

    def __getattribute__(self: object, attribute: str) -> object:
        caller = sys._getframe(1).f_globals.get("__name__")
        if attribute == name and caller == exposition_cache.__name__:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return original(self, attribute)

    monkeypatch.setattr(owner, "__getattribute__", __getattribute__)


@pytest.fixture
def warnings() -> Iterator[list[logging.LogRecord]]:
    """The service logger's warnings, whether or not a writer thread is configured."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("observer")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def start(registry: CollectorRegistry) -> Iterator[Service]:
    settings = make_settings()
    with TestClient(create_app(settings, registry)) as client:
        yield Service(client, settings)


def assert_same_as_prometheus_client(service: Service, registry: CollectorRegistry) -> Scraped:
    response = service.client.get("/metrics")
    assert response.status_code == 200
    served = Scraped(response.text)
    expected = Scraped(generate_latest(registry).decode())
    wanted = {key: value for key, value in expected.samples.items() if "_created" not in key[0]}
    assert served.samples.keys() == wanted.keys()
    steady = {key for key in wanted if not key[0].startswith(MOVING)}
    assert {key: served.samples[key] for key in steady} == {key: wanted[key] for key in steady}
    return served


def fallback_lines(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [record for record in records if record.getMessage() == FELL_BACK]


@pytest.mark.parametrize(
    ("owner", "name"),
    exposition_cache.INTERNALS,
    ids=[f"{owner.__name__}.{name}" for owner, name in exposition_cache.INTERNALS],
)
def test_an_internal_gone_at_start_leaves_metrics_to_prometheus_client(
    monkeypatch: pytest.MonkeyPatch,
    warnings: list[logging.LogRecord],
    owner: type | types.ModuleType,
    name: str,
) -> None:
    hide(monkeypatch, owner, name)
    registry = CollectorRegistry()
    for service in start(registry):
        assert service.deliver_fixture("deployment_status_success").status_code == 200
        served = assert_same_as_prometheus_client(service, registry)
        assert served.value(FALLBACKS) == 1
        deployments = [v for k, v in served.samples.items() if k[0] == "dora_deployments_total"]
        assert sum(deployments) == 1
        assert_same_as_prometheus_client(service, registry)
    assert len(fallback_lines(warnings)) == 1


def test_an_internal_gone_later_fails_no_scrape(
    monkeypatch: pytest.MonkeyPatch, warnings: list[logging.LogRecord]
) -> None:
    registry = CollectorRegistry()
    for service in start(registry):
        service.deliver_fixture("deployment_status_success")
        assert service.metrics().value(FALLBACKS) == 0
        hide(monkeypatch, values.MutexValue, "_value")
        service.deliver_fixture("deployment_status_failure")
        served = assert_same_as_prometheus_client(service, registry)
        assert served.value(FALLBACKS) == 1
        assert assert_same_as_prometheus_client(service, registry).value(FALLBACKS) == 1
    assert len(fallback_lines(warnings)) == 1


def test_a_renderer_that_fits_is_kept(warnings: list[logging.LogRecord]) -> None:
    registry = CollectorRegistry()
    for service in start(registry):
        service.deliver_fixture("deployment_status_success")
        assert assert_same_as_prometheus_client(service, registry).value(FALLBACKS) == 0
    assert fallback_lines(warnings) == []


# A prometheus-client without a name the fast renderer reads when it is imported.
WITHOUT_AT_IMPORT = """
import json, logging
import prometheus_client.values
del prometheus_client.values.MutexValue
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient
from observer.app import create_app
from observer.settings import Settings

warnings = []
handler = logging.Handler(logging.WARNING)
handler.emit = lambda record: warnings.append(record.getMessage())
logging.getLogger("observer").addHandler(handler)
registry = CollectorRegistry()
with TestClient(create_app(Settings(webhook_secret="s" * 32), registry)) as client:
    answer = client.get("/metrics")
print(json.dumps({"status": answer.status_code, "text": answer.text, "warnings": warnings}))
"""


def test_an_internal_gone_at_import_leaves_metrics_to_prometheus_client() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_AT_IMPORT], capture_output=True, check=True, timeout=60
    )
    answer = json.loads(done.stdout)
    assert answer["status"] == 200
    served = Scraped(answer["text"])
    assert served.value(FALLBACKS) == 1
    assert (
        served.value(
            "observer_webhook_deliveries_total", source="github", event="ping", result="accepted"
        )
        == 0
    )
    assert answer["warnings"].count(FELL_BACK) == 1
