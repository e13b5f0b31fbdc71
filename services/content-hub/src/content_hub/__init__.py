"""Qianmian content hub (内容中心): content, channel variants, review workflow, compliance screening."""

__version__ = "0.1.0"
