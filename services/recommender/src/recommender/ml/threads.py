"""Thread pinning: one BLAS thread per process; implicit and LightFM parallelise themselves."""

from __future__ import annotations

import os


def pin_blas_threads() -> None:
    """Set ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` to 1 unless already set.

    Must run before numpy/implicit load OpenBLAS; implicit warns (and slows down badly) when
    OpenBLAS spawns its own threads inside its parallel loops.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
