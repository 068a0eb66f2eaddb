"""GitLab webhook events: one module each, chosen from a table by ``X-Gitlab-Event``.

Project and group hooks send the same names. An incident is an issue to GitLab, and a
confidential one arrives as ``Confidential Issue Hook``.
"""

from __future__ import annotations

from collections.abc import Mapping

from observer.sources.adapter import Handler
from observer.sources.gitlab.events import deployment, issue, merge_request, push

EVENTS: Mapping[str, Handler] = {
    "Push Hook": push.handle,
    "Merge Request Hook": merge_request.handle,
    "Deployment Hook": deployment.handle,
    "Issue Hook": issue.handle,
    "Confidential Issue Hook": issue.handle,
}
