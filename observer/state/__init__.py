"""Where the state that decides a number lives: process memory, a snapshot file, or Redis.

Counters stay in each process's registry (Prometheus sums them); what is kept here decides
whether and what to count: events already seen, each environment's deployment history, the
changes already observed, and what webhooks taught about commits and pull requests.
"""

from observer.state.base import KINDS, Kind, Store, StoreUnavailable, Verdict
from observer.state.open import open_store
from observer.state.unit import Unit

__all__ = ["KINDS", "Kind", "Store", "StoreUnavailable", "Unit", "Verdict", "open_store"]
