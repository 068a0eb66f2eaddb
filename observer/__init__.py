"""observer: DORA metrics from GitHub webhooks and CI pipelines, exported for Prometheus."""

__version__ = "0.1.0"
