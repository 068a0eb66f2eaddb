"""The forges' APIs observer asks (GitHub's, GitLab's): clients, errors, retries, limits."""
