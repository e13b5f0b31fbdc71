"""Deterministic synthetic retail bank for Qianmian: catalogue, customers, moments and planted preferences."""

from qianmian_bankgen.catalogue import CATALOGUE, CatalogueProduct, by_id
from qianmian_bankgen.dynamics import Panel, PanelManifest, iter_panel, simulate_panel, write_panel
from qianmian_bankgen.generator import Manifest, generate

__all__ = [
    "CATALOGUE",
    "CatalogueProduct",
    "Manifest",
    "Panel",
    "PanelManifest",
    "by_id",
    "generate",
    "iter_panel",
    "simulate_panel",
    "write_panel",
]
