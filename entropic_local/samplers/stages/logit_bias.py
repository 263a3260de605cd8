"""``logit_bias``: a fixed bias on chosen tokens' logits (``-inf`` bans a token)."""

from __future__ import annotations

import math
import numbers
from typing import Any, Mapping

import numpy as np

from ... import kernels as _k
from ...errors import InvalidSamplerSpec
from ..candidates import Candidates
from ..params import INF, format_value, parse_number
from ..stage import Stage

__all__ = ["LogitBias"]


class LogitBias(Stage):
    """Add a fixed bias to chosen tokens' logits: ``z_t ← z_t + b_t``.

    Built from a mapping token id → bias (``LogitBias({15043: -math.inf, 1234: 2.5})``); a
    bias of ``-inf`` bans the token (it stays in the set as a masked entry until a truncating
    stage drops it). Biases must be finite or ``-inf``. Spec form:
    ``logit_bias:15043=-inf,1234=2.5`` (token ids ascending); ``logit_bias`` alone is the
    empty bias. A token id outside the model's vocabulary raises ``InvalidSamplerSpec`` at
    the first ``apply``.
    """

    name = "logit_bias"
    order = 0

    def __init__(self, bias: Mapping[int, float] | None = None):
        items: dict[int, float] = {}
        for tok, b in (bias or {}).items():
            items[self._check_token(tok)] = self._check_bias(tok, b)
        self.bias = dict(sorted(items.items()))
        self._ids = np.fromiter(self.bias.keys(), dtype=np.int32, count=len(self.bias))
        self._values = np.fromiter(self.bias.values(), dtype=np.float32, count=len(self.bias))

    @staticmethod
    def _check_token(tok: Any) -> int:
        if isinstance(tok, bool) or not isinstance(tok, numbers.Integral):
            raise InvalidSamplerSpec(f"logit_bias: token ids must be integers, got {tok!r}")
        if not 0 <= int(tok) < 2**31:
            raise InvalidSamplerSpec(f"logit_bias: token id {int(tok)} is out of range [0, 2**31)")
        return int(tok)

    @staticmethod
    def _check_bias(tok: Any, b: Any) -> float:
        if isinstance(b, bool) or not isinstance(b, numbers.Real):
            raise InvalidSamplerSpec(f"logit_bias: the bias of token {tok} must be a number, got {b!r}")
        b = float(b)
        if not (math.isfinite(b) or b == -INF):
            raise InvalidSamplerSpec(
                f"logit_bias: the bias of token {tok} must be finite or -inf, got {b!r}")
        return b

    @classmethod
    def accepts_param(cls, key: str) -> bool:
        return key.isdigit()

    @classmethod
    def param_help(cls) -> str:
        return "logit_bias takes token_id=bias items"

    @classmethod
    def convert(cls, key: str, raw: str) -> Any:
        value = parse_number(raw, integer=False)
        if value is None:
            raise InvalidSamplerSpec(f"logit_bias: the bias of token {key} must be a number, got '{raw}'")
        return cls._check_bias(key, value)

    @classmethod
    def from_params(cls, values: dict[str, Any]) -> "LogitBias":
        return cls({int(k): v for k, v in values.items()})

    def param_values(self) -> dict[str, Any]:
        return {str(t): b for t, b in self.bias.items()}

    def spec(self) -> str:
        if not self.bias:
            return self.name
        return self.name + ":" + ",".join(f"{t}={format_value(b)}" for t, b in self.bias.items())

    def apply(self, cands: Candidates) -> None:
        if not self.bias:
            return
        if int(self._ids[-1]) >= cands.n_vocab:
            raise InvalidSamplerSpec(
                f"logit_bias: token {int(self._ids[-1])} is outside the vocabulary "
                f"(n_vocab={cands.n_vocab})")
        _k.apply_logit_bias(cands.ids, cands.logits, cands.n, cands.identity,
                            self._ids, self._values)
        cands.sorted = False
