"""Deterministic synthetic retail bank for Qianmian: catalogue, customers, moments and planted preferences."""

from qianmian_bankgen.catalogue import CATALOGUE, CatalogueProduct, by_id
from qianmian_bankgen.generator import Manifest, generate

__all__ = ["CATALOGUE", "CatalogueProduct", "Manifest", "by_id", "generate"]
