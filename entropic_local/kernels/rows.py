"""Statistics of many logit rows in one call: ``rows_stats(mat, out)``.

A batched decode step gives one logit row per sequence (``llama_get_logits``: an
``[n_outputs, n_vocab]`` float32 block). ``rows_stats`` runs the fused pass of
``stats.logit_stats`` (max, log Z, entropy, varentropy at temperature 1) over every row in
ONE compiled call, with the GIL released (``nogil``), instead of one Python call per row:
``out[r] = (max_logit, log_z, entropy, varentropy)`` of ``softmax(mat[r])``. NaN or an
all-masked row raises ``ValueError`` as ``logit_stats`` does.
"""

from __future__ import annotations

import numba
import numpy as np

from .stats import stats_n


@numba.njit(cache=True, nogil=True)
def rows_stats(mat, out):
    """``out[r, :4] = logit_stats(mat[r], 1.0)`` for every row of ``mat`` (2-D float32)."""
    n_rows, n = mat.shape
    if out.shape[0] < n_rows or out.shape[1] < 4:
        raise ValueError("out must hold n_rows x 4 values")
    for r in range(n_rows):
        zmax, log_z, h, v = stats_n(mat[r], n, 1.0)
        out[r, 0] = zmax
        out[r, 1] = log_z
        out[r, 2] = h
        out[r, 3] = v
    return n_rows


def rows_stats_array(mat: np.ndarray) -> np.ndarray:
    """``rows_stats`` into a fresh ``[n_rows, 4]`` float64 array."""
    out = np.empty((mat.shape[0], 4), dtype=np.float64)
    rows_stats(mat, out)
    return out
