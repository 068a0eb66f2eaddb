"""GitLab project and group webhooks, POST /gitlab: push, merge request, deployment, issue."""
