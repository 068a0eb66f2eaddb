"""Every metric the service exports, defined once and bound to one registry."""

from __future__ import annotations

import platform
from collections.abc import Iterable

from prometheus_client import (
    GC_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from observer import __version__
from observer.ops import logs

# One bucket set for every duration, holding the DORA tier edges (1 h, 1 d, 1 w, 30 d) so that
# tiers can be read straight off the buckets.
DURATION_BUCKETS = (
    60, 300, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 345600,
    604800, 1209600, 2592000, 5184000, 7776000, 15552000, float("inf"),
)  # fmt: skip

REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
API_CALL_BUCKETS = (0, 1, 2, 3, 5, 8, 13, 21, 34)

DEPLOYMENT_STATUSES = ("success", "failure", "error")
PULL_REQUEST_ACTIONS = ("opened", "merged", "closed")
WEBHOOK_RESULTS = (
    "accepted", "ignored", "duplicate", "unauthorized", "malformed", "too_large", "busy",
    "unavailable",
)  # fmt: skip
API_RESULTS = ("accepted", "ignored", "duplicate", "invalid", "unauthorized", "unavailable")
API_EVENT_TYPES = ("deployment", "incident", "survey", "other")
# Lines added plus deleted: from a one-line fix to a sweeping change, with the usual review-size
# guidance (under 250 lines reviews well, over 1000 rarely does) falling on edges.
PULL_REQUEST_SIZE_BUCKETS = (
    10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, float("inf"),
)  # fmt: skip
SATISFACTION_BUCKETS = (1, 2, 3, 4, 5)
NPS_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
REVIEW_STATES = ("approved", "changes_requested", "commented", "dismissed")
REWORK_KINDS = ("revert", "hotfix")
REDELIVERY_RESULTS = ("requested", "failed", "skipped")
ENRICHMENT_FAILURES = (
    "rate_limited", "timeout", "unreachable", "server_error", "not_found",
    "unauthorized", "malformed", "error",
)  # fmt: skip


class Metrics:
    """The exporter's metrics, each created in ``registry`` with its known label values.

    Names are written as they are exposed (a counter's ``_total`` included), so that searching
    the code for a metric finds it.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

        # DORA primitives.
        self.deployments = Counter(
            "dora_deployments_total",
            "Deployments that reached a terminal status.",
            ["repository", "environment", "status"],
            registry=registry,
        )
        self.lead_time = self._duration(
            "dora_lead_time_seconds",
            "Changes newly shipped by a successful deployment: deployment time minus the "
            "change's first commit time.",
            ["repository", "environment"],
        )
        self.merge_to_deploy = self._duration(
            "dora_merge_to_deploy_seconds",
            "Merged pull requests newly shipped by a successful deployment: deployment time "
            "minus merge time.",
            ["repository", "environment"],
        )
        self.deployment_recovery = self._duration(
            "dora_deployment_recovery_seconds",
            "Successful deployments that ended a run of change failures: time since the run's "
            "first failure began.",
            ["repository", "environment"],
        )
        self.change_failures = Counter(
            "dora_change_failures_total",
            "Deployments to production that failed, counted once with the first cause found: "
            "failed, rolled_back, incident, remediated.",
            ["repository", "environment", "cause"],
            registry=registry,
        )
        self.rework_deployments = Counter(
            "dora_rework_deployments_total",
            "Successful deployments to production that were unplanned: shipping a revert or a "
            "hotfix, restoring service after a change failure, or during an open incident.",
            ["repository", "environment"],
            registry=registry,
        )
        self.incidents_opened = Counter(
            "dora_incidents_opened_total",
            "Incidents opened.",
            ["repository"],
            registry=registry,
        )
        self.incident_recovery = self._duration(
            "dora_incident_recovery_seconds",
            "Incidents resolved: resolved time minus opened time.",
            ["repository"],
        )

        # GitHub activity, by repository and never by person.
        self.pull_requests = Counter(
            "github_pull_requests_total",
            "Pull requests opened, merged, or closed unmerged.",
            ["repository", "action"],
            registry=registry,
        )
        self.pull_request_cycle_time = self._duration(
            "github_pull_request_cycle_time_seconds",
            "Merged pull requests: merge time minus creation time.",
            ["repository"],
        )
        self.commits_pushed = Counter(
            "github_commits_pushed_total",
            "Commits pushed that were new to the repository.",
            ["repository"],
            registry=registry,
        )

        # The service's own health.
        self.build_info = Info(
            "observer_build", "The running observer's version.", registry=registry
        )
        self.build_info.info({"version": __version__, "python": platform.python_version()})
        self.webhook_deliveries = Counter(
            "observer_webhook_deliveries_total",
            "Deliveries to each source's endpoint (/webhook, ...), by source, event and outcome.",
            ["source", "event", "result"],
            registry=registry,
        )
        self.api_events = Counter(
            "observer_api_events_total",
            "Events pushed to /api/event, by type and outcome.",
            ["type", "result"],
            registry=registry,
        )
        self.request_duration = Histogram(
            "observer_request_duration_seconds",
            "Time to answer a /webhook or /api/event request.",
            ["endpoint"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.unexpected_errors = Counter(
            "observer_unexpected_errors_total",
            "Requests to any endpoint that failed with an unexpected error: answered 500, and "
            "logged with the traceback.",
            registry=registry,
        )
        self.labels_folded = Counter(
            "observer_label_values_folded_total",
            "Events whose label value was folded into 'other' because its cap was reached.",
            ["label"],
            registry=registry,
        )
        self.last_event = Gauge(
            "observer_last_event_timestamp_seconds",
            "Unix time of the last event accepted for a repository.",
            ["repository"],
            registry=registry,
        )

        # GitHub API enrichment.
        self.github_requests = Counter(
            "observer_github_api_requests_total",
            "Requests to the GitHub API, by HTTP status code ('error' when none came back).",
            ["status"],
            registry=registry,
        )
        self.github_request_duration = Histogram(
            "observer_github_api_request_duration_seconds",
            "Time taken by requests to the GitHub API.",
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.github_rate_limit_remaining = LastReported(
            "observer_github_rate_limit_remaining",
            "Requests left in the GitHub API's primary rate limit, as it last reported.",
            registry=registry,
        )
        # GitLab API enrichment (GITLAB_TOKEN).
        self.gitlab_requests = Counter(
            "observer_gitlab_api_requests_total",
            "Requests to the GitLab API, by HTTP status code ('error' when none came back).",
            ["status"],
            registry=registry,
        )
        self.gitlab_rate_limit_remaining = LastReported(
            "observer_gitlab_rate_limit_remaining",
            "Requests left in the GitLab API's rate limit, as it last reported.",
            registry=registry,
        )
        self.enrichment_queue_depth = Gauge(
            "observer_enrichment_queue_depth",
            "Deployments waiting for lead-time enrichment.",
            registry=registry,
        )
        self.enrichment_dropped = Counter(
            "observer_enrichment_dropped_total",
            "Deployments not enriched because the queue was full or the service stopped.",
            registry=registry,
        )
        self.enrichment_failures = Counter(
            "observer_enrichment_failures_total",
            "Deployments whose enrichment failed, by reason.",
            ["reason"],
            registry=registry,
        )
        self.enrichment_truncated = Counter(
            "observer_enrichment_compare_truncated_total",
            "Deployments that shipped more commits than the compare pages read, or a push kept.",
            registry=registry,
        )
        self.enrichment_lookups_truncated = Counter(
            "observer_enrichment_truncated_total",
            "Commits and pull requests of a deployment not looked up, past the lookup limit; "
            "their changes are timed from their own commits.",
            registry=registry,
        )
        self.enrichment_api_calls = Histogram(
            "observer_enrichment_api_calls",
            "Forge API calls (GitHub's or GitLab's) made to enrich one deployment.",
            buckets=API_CALL_BUCKETS,
            registry=registry,
        )

        # The state store (STATE_URL).
        self.state_errors = Counter(
            "observer_state_errors_total",
            "Calls to the state store that failed (the deliveries concerned were answered 503), "
            "and file snapshots that could not be written.",
            registry=registry,
        )
        self.state_up = Gauge(
            "observer_state_up",
            "Whether the state store answered its last check (1) or not (0).",
            registry=registry,
        )
        self.state_in_doubt = Gauge(
            "observer_state_units_in_doubt",
            "Events and lead-time work whose commit to the state store may or may not have "
            "landed (the connection failed), waiting for the store to say which.",
            registry=registry,
        )
        self.state_in_doubt_dropped = Counter(
            "observer_state_units_in_doubt_dropped_total",
            "Units in doubt given up unresolved because too many were waiting: if they had "
            "landed, their counts are missing from this replica.",
            registry=registry,
        )
        self.clock_skew = Counter(
            "observer_clock_skew_total",
            "Webhook event times later than their arrival plus MAX_CLOCK_SKEW, replaced by the "
            "time of arrival.",
            registry=registry,
        )

        # Missed-delivery recovery (REDELIVER_HOOKS).
        self.redeliveries = Counter(
            "observer_redeliveries_total",
            "Failed webhook deliveries: redelivery requested from GitHub, the request failed, "
            "or skipped because observer had processed the delivery anyway.",
            ["result"],
            registry=registry,
        )

        self.log_lines_dropped = LogLinesDropped(registry)
        self.exposition_fallbacks = Counter(
            "observer_exposition_fallbacks_total",
            "Times /metrics left its fast renderer for prometheus-client's own, for the rest of "
            "the process, because the two disagreed or the fast one failed.",
            registry=registry,
        )

        self._teams_and_activity(registry)
        self._initialise_known_labels()
        self._add_runtime_collectors()

    def _add_runtime_collectors(self) -> None:
        # The process_* and python_* series every Prometheus user expects of a Python exporter,
        # on this registry rather than prometheus-client's global one, which is not served.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        if GC_COLLECTOR is not None:
            GCCollector(registry=self.registry)

    def _teams_and_activity(self, registry: CollectorRegistry) -> None:
        # Teams, reviews, rework and surveys: by repository or team, never by person.
        self.repository_team_info = Gauge(
            "observer_repository_team_info",
            "A team owns a repository (always 1): join it onto any repository metric.",
            ["repository", "team"],
            registry=registry,
        )
        self.teams_reload_failures = Counter(
            "observer_teams_reload_failures_total",
            "Times TEAMS_FILE changed but could not be read or validated; the last good "
            "teams stay in use.",
            registry=registry,
        )
        self.teams_last_reload_successful = Gauge(
            "observer_teams_last_reload_successful",
            "1 when the last read of TEAMS_FILE succeeded, 0 when its current content is broken.",
            registry=registry,
        )
        self.team_pull_requests = Counter(
            "github_team_pull_requests_total",
            "Pull requests by the team's members opened, merged, or closed unmerged, each "
            "counted by the member's weight.",
            ["team", "action"],
            registry=registry,
        )
        self.team_pull_request_cycle_time = self._duration(
            "github_team_pull_request_cycle_time_seconds",
            "Merged pull requests by the team's members: merge time minus creation time.",
            ["team"],
        )
        self.pull_request_first_review = self._duration(
            "github_pull_request_first_review_seconds",
            "Pull requests' first review by someone other than their author: time since "
            "opening, or since ready for review.",
            ["repository"],
        )
        self.team_pull_request_first_review = self._duration(
            "github_team_pull_request_first_review_seconds",
            "First reviews of pull requests by the team's members: time since opening, or "
            "since ready for review.",
            ["team"],
        )
        self.pull_request_reviews = Counter(
            "github_pull_request_reviews_total",
            "Reviews submitted, by their state.",
            ["repository", "state"],
            registry=registry,
        )
        self.pull_request_size = Histogram(
            "github_pull_request_size_lines",
            "Merged pull requests' lines added plus lines deleted.",
            ["repository"],
            buckets=PULL_REQUEST_SIZE_BUCKETS,
            registry=registry,
        )
        self.rework = Counter(
            "dora_rework_total",
            "Merged pull requests that revert an earlier one or carry the hotfix label.",
            ["repository", "kind"],
            registry=registry,
        )
        self.survey_satisfaction = Histogram(
            "space_survey_satisfaction",
            "Anonymous survey answers to satisfaction, 1 to 5.",
            ["team"],
            buckets=SATISFACTION_BUCKETS,
            registry=registry,
        )
        self.survey_nps = Histogram(
            "space_survey_nps",
            "Anonymous survey answers to how likely one is to recommend the team, 0 to 10.",
            ["team"],
            buckets=NPS_BUCKETS,
            registry=registry,
        )

    def _duration(self, name: str, documentation: str, labels: list[str]) -> Histogram:
        return Histogram(
            name, documentation, labels, buckets=DURATION_BUCKETS, registry=self.registry
        )

    def _initialise_known_labels(self) -> None:
        # Series that exist from the start make rate() and absent() behave from the first scrape.
        for kind in API_EVENT_TYPES:
            for result in API_RESULTS:
                self.api_events.labels(type=kind, result=result)
        for endpoint in ("webhook", "api_event"):
            self.request_duration.labels(endpoint=endpoint)
        for label in ("repository", "environment"):
            self.labels_folded.labels(label=label)
        for reason in ENRICHMENT_FAILURES:
            self.enrichment_failures.labels(reason=reason)
        for result in REDELIVERY_RESULTS:
            self.redeliveries.labels(result=result)


class LastReported(Collector):
    """A gauge that is absent until a value has been reported.

    A plain gauge reads 0 from the start, which for the rate limit means "rate limited" when
    GitHub has not been asked anything yet.
    """

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self._name = name
        self._documentation = documentation
        self._value: float | None = None
        registry.register(self)

    def set(self, value: float) -> None:
        self._value = value

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(self._name, self._documentation)]

    def collect(self) -> Iterable[Metric]:
        if self._value is None:
            return []
        return [GaugeMetricFamily(self._name, self._documentation, value=self._value)]


class LogLinesDropped(Collector):
    """The log lines the process dropped, read from the log handler's own count.

    The handler belongs to the serve function and to logging, not to a registry, so its count is
    read at scrape time rather than copied into a counter of this registry.
    """

    NAME = "observer_log_lines_dropped"
    DOCUMENTATION = "Log lines dropped because standard output did not keep up with them."

    def __init__(self, registry: CollectorRegistry) -> None:
        registry.register(self)

    def describe(self) -> Iterable[Metric]:
        return [CounterMetricFamily(self.NAME, self.DOCUMENTATION)]

    def collect(self) -> Iterable[Metric]:
        return [CounterMetricFamily(self.NAME, self.DOCUMENTATION, value=logs.lines_dropped())]
