"""GitHub: webhook deliveries, and the REST and GraphQL API lead time asks."""
