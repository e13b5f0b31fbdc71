"""The only place that issues queries against the rights hub's tables."""

from rights_hub.repository.holdings import GrantRepository, ReservationRepository, UsageRepository
from rights_hub.repository.idempotency import IdempotencyRepository
from rights_hub.repository.ledger import LedgerRepository, LedgerSums
from rights_hub.repository.rights import CounterDeltas, RightRepository

__all__ = [
    "CounterDeltas",
    "GrantRepository",
    "IdempotencyRepository",
    "LedgerRepository",
    "LedgerSums",
    "ReservationRepository",
    "RightRepository",
    "UsageRepository",
]
