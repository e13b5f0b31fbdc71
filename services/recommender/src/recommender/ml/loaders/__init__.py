"""Loaders for real-world formats: Santander-style monthly snapshots and UCI Bank Marketing."""

from recommender.ml.loaders.santander import load_santander
from recommender.ml.loaders.uci_bank import load_uci_bank

__all__ = ["load_santander", "load_uci_bank"]
