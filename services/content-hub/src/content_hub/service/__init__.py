"""Business rules of the content hub: workflow, screening, rendering. No SQL, no HTTP framework objects."""

from content_hub.service.content import ContentFilter, ContentService
from content_hub.service.products import CatalogueDirectory, ProductDirectory, ProductFacts
from content_hub.service.screening import Screener, ScreeningRules, normalise
from content_hub.service.workflow import ALLOWED_TRANSITIONS

__all__ = [
    "ALLOWED_TRANSITIONS",
    "CatalogueDirectory",
    "ContentFilter",
    "ContentService",
    "ProductDirectory",
    "ProductFacts",
    "Screener",
    "ScreeningRules",
    "normalise",
]
