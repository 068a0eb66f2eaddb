"""GitLab: its webhooks, and its API for lead time."""
