"""Lead time for changes: what a deployment shipped, learned once its events settle."""
