"""Qianmian recommender: models, registry, decision pipeline."""

__version__ = "0.1.0"
