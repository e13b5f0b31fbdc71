"""The feature vocabulary's two ways of encoding rows give the same bits."""

from __future__ import annotations

import random

import numpy as np
import pytest
import scipy.sparse as sp
from recommender.ml.data import FEW_ROWS, FeatureVocabulary

NAMES = [f"t{i}" for i in range(40)]


def _prefix(rng: random.Random, rows: int, kind: int) -> sp.csr_matrix | None:
    if kind == 0:
        return None
    if kind == 1:
        return sp.identity(rows, dtype=np.float32, format="csr")
    width = 7  # one identity column per warm row, none for a cold one
    chosen = [rng.randrange(-1, width) for _ in range(rows)]
    hit = [r for r, c in enumerate(chosen) if c >= 0]
    return sp.csr_matrix(
        (np.ones(len(hit), dtype=np.float32), (hit, [chosen[r] for r in hit])),
        shape=(rows, width),
        dtype=np.float32,
    )


@pytest.mark.parametrize("rows", [1, 3, FEW_ROWS, 200])
def test_row_by_row_and_whole_matrix_encodings_are_identical(rows: int) -> None:
    vocabulary = FeatureVocabulary(NAMES)
    rng = random.Random(rows)
    for trial in range(60):
        # unknown tokens (t40..t50), repeats and empty rows included
        tokens = [[f"t{rng.randint(0, 50)}" for _ in range(rng.randint(0, 8))] for _ in range(rows)]
        prefix = _prefix(rng, rows, trial % 3)
        by_rows = vocabulary._encode_rows(tokens, prefix)
        whole = vocabulary._encode_matrix(tokens, prefix)
        whole.sort_indices()
        assert by_rows.shape == whole.shape
        assert np.array_equal(by_rows.indptr, whole.indptr)
        assert np.array_equal(by_rows.indices, whole.indices)
        assert by_rows.data.dtype == whole.data.dtype == np.float32
        assert np.array_equal(by_rows.data, whole.data)
        sums = np.asarray(by_rows.sum(axis=1)).ravel()
        assert np.allclose(sums[sums > 0], 1.0, atol=1e-6)
        assert vocabulary.encode(tokens, prefix=prefix).shape == whole.shape


def test_a_prefix_of_another_height_is_refused() -> None:
    with pytest.raises(ValueError, match="rows"):
        FeatureVocabulary(NAMES)._encode_rows([["t1"]], sp.identity(2, dtype=np.float32, format="csr"))
