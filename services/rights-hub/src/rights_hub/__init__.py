"""Qianmian rights hub (权益中心): rights catalogue, budgets, and the idempotent grant ledger."""

__version__ = "0.1.0"
