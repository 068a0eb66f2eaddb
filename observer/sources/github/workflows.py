"""Which GitHub Actions workflow runs are deployments: DEPLOY_WORKFLOWS and DEPLOY_BRANCHES."""

from __future__ import annotations

from observer.settings import Settings


class DeployWorkflows:
    def __init__(self, settings: Settings) -> None:
        # A workflow is named by its name or its file path; names are matched without regard
        # to case, as people write them in settings by hand.
        self._environments = {workflow.lower(): env for workflow, env in settings.deploy_workflows}
        self._branches = frozenset(settings.deploy_branches)

    def environment(self, name: str | None, path: str) -> str | None:
        """The environment a run of this workflow deploys to, or None when it does not deploy."""
        # A called workflow's path may carry the ref it ran at: "….yml@refs/heads/main".
        path = path.partition("@")[0]
        for key in (path, name):
            if key:
                environment = self._environments.get(key.lower())
                if environment is not None:
                    return environment
        return None

    def branch_counts(self, branch: str | None, default_branch: str | None) -> bool:
        if branch is None:
            return False
        if self._branches:
            return branch in self._branches
        return branch == default_branch
