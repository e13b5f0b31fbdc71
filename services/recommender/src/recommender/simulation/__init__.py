"""Simulated customers for A/B experiments: the synthetic bank's planted preferences answer what the
real decision API serves, day by day, through ``POST /v1/decisions`` and ``POST /v1/feedback``.

Not part of the service: nothing in ``recommender.main``, ``api``, ``service``, ``repository`` or ``ml``
imports it (an import-linter contract). It drives an app it is given (an ``httpx.AsyncClient`` over
``httpx.ASGITransport``); building the stack around it is the caller's job (``bench/experiment_sim.py``,
``tests/test_experiment_simulation.py``).

- :mod:`recommender.simulation.response`: the planted preferences and the response model;
- :mod:`recommender.simulation.runner`: the simulated days and the simulated clock;
- :mod:`recommender.simulation.implied`: what the planted preferences imply (exact expectations);
- :mod:`recommender.simulation.report`: ``experiments.md`` and its chart.
"""
