"""The process around the service: logs, startup and shutdown."""
