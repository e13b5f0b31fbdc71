"""Thread pinning: one BLAS thread per process; implicit and LightFM parallelise themselves."""

from __future__ import annotations

import os


def pin_blas_threads() -> None:
    """Set ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` to 1 and ``OMP_WAIT_POLICY`` to passive
    unless already set.

    Must run before numpy/implicit load OpenBLAS; implicit warns (and slows down badly) when
    OpenBLAS spawns its own threads inside its parallel loops.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    # OpenMP threads that wait at a barrier sleep instead of spinning. LightGBM (and implicit,
    # LightFM) hit many barriers per iteration; when the cores are shared (a Kubernetes CPU limit,
    # another job) a spinning thread burns the time its descheduled sibling needs: measured on the
    # 2-core machine under load, LightGBM took 6-13 s spinning against 2.2 s sleeping (1.3 s idle).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
