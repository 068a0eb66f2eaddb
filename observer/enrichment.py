"""The background worker that enriches deployments after their webhook has been answered."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from observer import logs
from observer.domain import Deployment, PullRequest, Push
from observer.github import GitHubError
from observer.knowledge import Knowledge, ShippedAt
from observer.leadtime import Job, LeadTime, Previous
from observer.metrics import Metrics


class Worker:
    """A bounded queue drained by a fixed number of tasks; a full queue drops, never waits."""

    def __init__(
        self,
        process: Callable[[Job], Awaitable[None]],
        metrics: Metrics,
        *,
        queue_size: int,
        concurrency: int,
    ) -> None:
        self._process = process
        self._metrics = metrics
        self._queue: asyncio.Queue[Job] = asyncio.Queue(queue_size)
        self._concurrency = concurrency
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepting = False
        self._running = 0
        metrics.enrichment_queue_depth.set_function(self._queue.qsize)

    def submit(self, job: Job) -> bool:
        if not self._accepting:
            self._metrics.enrichment_dropped.inc()
            return False
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self._metrics.enrichment_dropped.inc()
            logs.warning("enrichment queue full", repository=job.repository)
            return False
        return True

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing in progress."""
        return self._queue.empty() and self._running == 0

    def start(self) -> None:
        self._accepting = True
        for _ in range(self._concurrency):
            self._tasks.add(asyncio.create_task(self._consume()))

    async def stop(self, deadline: float) -> None:
        """Finish queued work within ``deadline`` seconds; what is left then is dropped."""
        self._accepting = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), deadline)
        left = self._queue.qsize() + self._running
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if left:
            self._metrics.enrichment_dropped.inc(left)
            logs.warning("enrichment stopped with work left", dropped=left)

    async def _consume(self) -> None:
        while True:
            job = await self._queue.get()
            self._running += 1
            try:
                await self._run(job)
            finally:
                self._running -= 1
                self._queue.task_done()

    async def _run(self, job: Job) -> None:
        try:
            await self._process(job)
        except GitHubError as error:
            self._fail(job, error.reason, str(error))
        except Exception as error:  # one bad job must not stop the worker
            self._fail(job, "error", repr(error))
            logs.LOGGER.exception("enrichment error", extra={"fields": {"sha": job.deployment.sha}})

    def _fail(self, job: Job, reason: str, detail: str) -> None:
        self._metrics.enrichment_failures.labels(reason=reason).inc()
        logs.warning(
            "enrichment failed",
            repository=job.repository,
            environment=job.environment,
            sha=job.deployment.sha,
            reason=reason,
            detail=detail,
        )


class Enricher:
    """Hears the recorder's events: learns from pushes and pull requests, queues deployments."""

    def __init__(self, knowledge: Knowledge, lead_time: LeadTime, worker: Worker) -> None:
        self._knowledge = knowledge
        self._lead_time = lead_time
        self._worker = worker

    def saw_push(self, push: Push) -> None:
        self._knowledge.learn_push(push)

    def saw_pull_request(self, pull_request: PullRequest) -> None:
        self._knowledge.learn_pull_request(pull_request)

    def shipped(self, deployment: Deployment, repository: str, environment: str) -> None:
        if not self._lead_time.can_enrich(deployment):
            return
        previous = self._knowledge.last_shipped(repository, environment)
        if previous is not None and previous.time > deployment.time:
            # Older than a deployment already seen: that one shipped these changes.
            return
        if deployment.sha is not None:
            self._knowledge.ship(
                repository, environment, ShippedAt(deployment.sha, deployment.time)
            )
        self._worker.submit(
            Job(
                deployment,
                repository,
                environment,
                previous if previous is not None else Previous.UNKNOWN,
            )
        )
