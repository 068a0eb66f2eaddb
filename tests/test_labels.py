"""Label values stay bounded: an allowlist, and caps that fold newcomers into 'other'."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import Service
from tests.test_api_event import deployment


def test_new_repositories_past_the_cap_fold_into_other(start: Callable[..., Service]) -> None:
    service = start(max_repositories=3)
    for index in range(10):
        service.push_events(deployment(repository=f"octo/app-{index}", environment="staging"))
    metrics = service.metrics()
    repositories = {
        dict(labels)["repository"]
        for (name, labels), value in metrics.samples.items()
        if name == "dora_deployments_total" and value
    }
    assert repositories == {"octo/app-0", "octo/app-1", "octo/app-2", "other"}
    assert (
        metrics.get(
            "dora_deployments_total", repository="other", environment="staging", status="success"
        )
        == 7
    )
    assert metrics.get("observer_label_values_folded_total", label="repository") == 7


def test_known_repositories_keep_their_series_after_the_cap(
    start: Callable[..., Service],
) -> None:
    service = start(max_repositories=1)
    service.push_events(deployment(repository="octo/first"))
    service.push_events(deployment(repository="octo/second"))
    service.push_events(deployment(repository="Octo/First"))
    metrics = service.metrics()
    assert (
        metrics.get(
            "dora_deployments_total",
            repository="octo/first",
            environment="production",
            status="success",
        )
        == 2
    )


def test_environments_are_lower_cased_and_capped(start: Callable[..., Service]) -> None:
    service = start(max_environments=2)
    for environment in ("Production", "PRODUCTION", "staging", "review-1", "review-2"):
        service.push_events(deployment(environment=environment))
    metrics = service.metrics()
    labels = {"repository": "octo/app", "status": "success"}
    assert metrics.get("dora_deployments_total", environment="production", **labels) == 2
    assert metrics.get("dora_deployments_total", environment="staging", **labels) == 1
    assert metrics.get("dora_deployments_total", environment="other", **labels) == 2
    assert metrics.get("observer_label_values_folded_total", label="environment") == 2


def test_an_allowlist_is_not_capped_again(start: Callable[..., Service]) -> None:
    service = start(repositories="octo/*", max_repositories=1)
    service.push_events(deployment(repository="octo/a"))
    service.push_events(deployment(repository="octo/b"))
    metrics = service.metrics()
    for repository in ("octo/a", "octo/b"):
        assert (
            metrics.get(
                "dora_deployments_total",
                repository=repository,
                environment="production",
                status="success",
            )
            == 1
        )


def test_the_allowlist_matches_exact_names_and_owners_without_case(
    start: Callable[..., Service],
) -> None:
    service = start(repositories="octo/app,Tools/*")
    results = [
        service.push_events(deployment(repository=name)).json()["results"][0]["result"]
        for name in ("OCTO/APP", "octo/app2", "tools/x", "toolsx/y", "other/app")
    ]
    assert results == ["accepted", "ignored", "accepted", "ignored", "ignored"]
