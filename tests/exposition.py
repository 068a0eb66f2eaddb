"""The /metrics text, parsed back with prometheus-client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

# The contract's bucket edges for every duration histogram, written out again here so that a
# change in the service's own list shows up as a failing test.
CONTRACT_BUCKETS = (
    60, 300, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 345600,
    604800, 1209600, 2592000, 5184000, 7776000, 15552000,
)  # fmt: skip

# Metrics of the domain: a rejected request must move none of them.
DOMAIN_PREFIXES = ("dora_", "github_")


class Exposition:
    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                self.samples[key] = sample.value

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def get(self, name: str, **labels: str) -> float:
        """The sample's value, 0 when the series does not exist yet."""
        return self.value(name, **labels) or 0.0

    def domain(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every domain sample that is not zero (timestamps of creation left out)."""
        return {
            key: value
            for key, value in self.samples.items()
            if key[0].startswith(DOMAIN_PREFIXES) and not key[0].endswith("_created") and value
        }
