"""Business rules of the rights hub: catalogue workflow, the budget ledger, expiry. No SQL, no HTTP."""

from rights_hub.service.catalogue import CatalogueService, RightFilter
from rights_hub.service.common import StoredResponse, utc_now
from rights_hub.service.ledger import LedgerService
from rights_hub.service.workflow import ALLOWED_TRANSITIONS

__all__ = [
    "ALLOWED_TRANSITIONS",
    "CatalogueService",
    "LedgerService",
    "RightFilter",
    "StoredResponse",
    "utc_now",
]
