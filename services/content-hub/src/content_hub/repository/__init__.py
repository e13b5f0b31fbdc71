"""The only place that issues queries against the content hub's tables."""

from content_hub.repository.content import ContentRepository

__all__ = ["ContentRepository"]
