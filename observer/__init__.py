"""observer: DORA metrics from forges, pagers and CI pipelines, exported for Prometheus."""

__version__ = "0.1.0"
