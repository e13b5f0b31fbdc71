"""HTTP routes of the rights hub: parse, authorise, call the service layer."""

from rights_hub.api.ledger import router as ledger_router
from rights_hub.api.rights import router as rights_router

ROUTERS = (rights_router, ledger_router)

__all__ = ["ROUTERS"]
