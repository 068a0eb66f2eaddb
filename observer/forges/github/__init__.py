"""GitHub's REST and GraphQL API: the token, the client, its errors and what it answers."""
