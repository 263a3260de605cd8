"""The truncating stages of llama.cpp: ``top_n_sigma``, ``top_k``, ``typical_p``, ``top_p``,
``min_p``: each keeps a subset of the live candidates (kernels in ``kernels/truncation``)."""

from __future__ import annotations

from ... import kernels as _k
from ..candidates import Candidates
from ..flags import Flag
from ..params import INF, REQUIRED, Param
from ..stage import Stage

__all__ = ["TopNSigma", "TopK", "TypicalP", "TopP", "MinP"]


class TopNSigma(Stage):
    """Top-nσ (Tang et al. 2024): keep ``z_i ≥ z_max − n·σ(z)``, σ the standard deviation of
    the finite live logits. Temperature invariant; order kept. Example: z = [3, 2, 1, 0],
    n = 1 → σ = 1.118, keeps 2 tokens."""

    name = "top_n_sigma"
    params = (Param("n", float, REQUIRED, 0.0, INF, lo_open=True),)
    main = "n"
    order = 2
    flags = (Flag("top_n_sigma", "n", float, "--top-nsigma",
                  "Keep the logits within n standard deviations of the largest (<= 0: off).",
                  off=0.0, off_below=True),)

    def __init__(self, n: float):
        self._set(n=n)

    def apply(self, cands: Candidates) -> None:
        old = cands.n
        cands.n = _k.top_n_sigma(cands.ids, cands.logits, old, self.n)
        if cands.n != old:
            cands.touch()


class TopK(Stage):
    """Top-k: keep the k largest logits, sorted descending (ties: kernel order)."""

    name = "top_k"
    params = (Param("k", int, REQUIRED, 1),)
    main = "k"
    order = 3
    flags = (Flag("top_k", "k", int, "--top-k", "Keep the k most likely tokens (<= 0: off).",
                  off=0, off_below=True),)

    def __init__(self, k: int):
        self._set(k=k)

    def apply(self, cands: Candidates) -> None:
        cands.n = _k.top_k(cands.ids, cands.logits, cands.n, self.k)
        cands.sorted = True
        cands.touch()


class TypicalP(Stage):
    """Locally typical sampling (Meister et al. 2022): with ``H`` the entropy of the live
    distribution, rank tokens by ``|−log p_i − H|`` and keep the smallest prefix of that
    ranking whose probability mass reaches ``p`` (at least ``min_keep``). The result is in
    typicality order, not logit order. ``p = 1`` is a no-op."""

    name = "typical_p"
    params = (Param("p", float, REQUIRED, 0.0, 1.0, lo_open=True), Param("min_keep", int, 1, 1))
    main = "p"
    order = 4
    flags = (Flag("typical_p", "p", float, "--typical",
                  "Locally typical sampling: keep the most typical tokens up to mass p (1.0: off).",
                  off=1.0),)

    def __init__(self, p: float, min_keep: int = 1):
        self._set(p=p, min_keep=min_keep)

    def apply(self, cands: Candidates) -> None:
        if self.p >= 1.0:
            return
        cands.n = _k.typical_p(cands.ids, cands.logits, cands.n, self.p, self.min_keep)
        cands.sorted = False
        cands.touch()


class TopP(Stage):
    """Nucleus sampling: keep the smallest set of highest-probability tokens whose mass is
    at least ``p`` (at least ``min_keep``); result sorted descending. A free-energy budget:
    the kept set's free energy exceeds the ensemble's by at most ``T ln(1/p)``.
    ``p = 1`` is a no-op."""

    name = "top_p"
    params = (Param("p", float, REQUIRED, 0.0, 1.0, lo_open=True), Param("min_keep", int, 1, 1))
    main = "p"
    order = 5
    flags = (Flag("top_p", "p", float, "--top-p", "Nucleus: keep the smallest set with mass >= p.",
                  off=1.0),)

    def __init__(self, p: float, min_keep: int = 1):
        self._set(p=p, min_keep=min_keep)

    def apply(self, cands: Candidates) -> None:
        if self.p >= 1.0:
            return
        cands.n = _k.top_p(cands.ids, cands.logits, cands.n, self.p, self.min_keep, cands.sorted)
        cands.sorted = True
        cands.touch()


class MinP(Stage):
    """Min-p (Nguyen et al. 2024): keep ``p_i ≥ p · p_max``, i.e. ``z_i ≥ z_max + ln p`` (an
    energy window of width ``ln(1/p)`` above the ground state), at least ``min_keep``.
    Order kept. ``p = 0`` is a no-op."""

    name = "min_p"
    params = (Param("p", float, REQUIRED, 0.0, 1.0), Param("min_keep", int, 1, 1))
    main = "p"
    order = 6
    flags = (Flag("min_p", "p", float, "--min-p", "Keep tokens with p >= min_p * p_max.", off=0.0),)

    def __init__(self, p: float, min_keep: int = 1):
        self._set(p=p, min_keep=min_keep)

    def apply(self, cands: Candidates) -> None:
        if self.p <= 0.0:
            return
        old = cands.n
        cands.n = _k.min_p(cands.ids, cands.logits, old, self.p, self.min_keep)
        if cands.n != old:
            cands.touch()
