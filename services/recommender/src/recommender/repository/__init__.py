"""The only place that queries the recommender's database: contact history and caps, the audit log,
feedback and idempotent answers."""

from recommender.repository.audit import AuditRecord, AuditRepository, NotPseudonymousError
from recommender.repository.contacts import CapLike, ContactRepository, Reservation
from recommender.repository.feedback import FeedbackRepository, IdempotencyRepository

__all__ = [
    "AuditRecord",
    "AuditRepository",
    "CapLike",
    "ContactRepository",
    "FeedbackRepository",
    "IdempotencyRepository",
    "NotPseudonymousError",
    "Reservation",
]
