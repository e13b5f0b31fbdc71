"""The only place that queries the recommender's database: contact history and caps, the audit log."""

from recommender.repository.audit import AuditRecord, AuditRepository, NotPseudonymousError
from recommender.repository.contacts import CapLike, ContactRepository, Reservation

__all__ = [
    "AuditRecord",
    "AuditRepository",
    "CapLike",
    "ContactRepository",
    "NotPseudonymousError",
    "Reservation",
]
