"""Where events come from: each source's adapter turns its deliveries into the domain's events."""
