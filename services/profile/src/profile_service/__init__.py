"""Qianmian customer profile (客户360): attributes, consent, risk, moments, contact history, value."""

__version__ = "0.1.0"
