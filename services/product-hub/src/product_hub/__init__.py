"""Qianmian product hub (产品中心): catalogue, approval workflow, eligibility."""

__version__ = "0.1.0"
