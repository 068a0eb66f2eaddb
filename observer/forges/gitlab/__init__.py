"""GitLab's REST and GraphQL API, for the lead time of GitLab projects."""
