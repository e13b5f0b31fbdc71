"""Experiments without a database: assignment, statistics, content bandits and definitions.

- :mod:`recommender.experiments.assignment`: deterministic hashing of (salt, customer) into buckets,
  arms by weight, layers whose experiments are mutually exclusive, the global holdout, stickiness.
- :mod:`recommender.experiments.stats`: per-arm estimates with intervals, tests against control with
  Holm's correction, the sample-ratio-mismatch check, guardrails, CUPED and the sample-size calculator
  (fixed-horizon: see the module's warning against peeking).
- :mod:`recommender.experiments.bandit`: Thompson-sampling allocation of content variants with an
  exploration floor, and its report.
- :mod:`recommender.experiments.definition`: what an experiment definition holds (API body and CLI file).

Persistence, the status workflow and the analysis of stored exposures are the service's
(:mod:`recommender.service.experiments`).
"""
