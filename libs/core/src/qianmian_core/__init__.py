"""Shared infrastructure for every Qianmian service: settings, database, logging, errors, auth, metrics."""
