"""Entropix's quadrant thresholds: data, per model family, and their JSON file.

``Thresholds(low_ent, med_ent, high_ent, low_vent, high_vent)`` in nats / nats², with
``0 ≤ low_ent ≤ med_ent ≤ high_ent`` and ``0 ≤ low_vent ≤ high_vent``. Upstream entropix's
defaults are in bits (low 0.1, medium 3.0, high 5.0 bits; low 0.1, high 5.0 bits²):
``Thresholds.from_bits`` converts (× ln 2 for entropy, × (ln 2)² for varentropy), giving
``UPSTREAM`` = 0.0693, 2.0794, 3.4657 nats; 0.0480, 2.4023 nats². Those fit neither test
model, so the defaults are per model family (GGUF ``general.architecture``,
``FAMILY_THRESHOLDS``), each the percentiles ``DEFAULT_PERCENTILES`` of the model's own
entropy H and varentropy V, teacher-forced over a calibration text: low_ent = 20th
percentile of H, med_ent = 60th, high_ent = 90th, low_vent = 20th percentile of V,
high_vent = 80th (rounded to 0.01). ``GENERIC`` (the mean of the measured families) serves
every other family. How they were measured and the share of each action they give:
``docs/entropix.md``; derive them for any model with
``entropic_local.evaluation.calibrate(model, text)``.

``Thresholds.save(path)`` / ``Thresholds.load(path)`` keep them in a small JSON file
(``entropix:thresholds=PATH`` loads one).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np

from ..errors import UsageError
from .params import format_value

__all__ = [
    "Thresholds", "order_error", "thresholds_for", "THRESHOLD_NAMES", "UPSTREAM_BITS",
    "UPSTREAM", "FAMILY_THRESHOLDS", "GENERIC", "DEFAULT_PERCENTILES", "LN2",
]

LN2 = math.log(2.0)
THRESHOLD_NAMES = ("low_ent", "med_ent", "high_ent", "low_vent", "high_vent")

# Upstream's quadrant bounds, in bits (entropy) and bits² (varentropy).
UPSTREAM_BITS: dict[str, float] = {
    "low_ent": 0.1, "med_ent": 3.0, "high_ent": 5.0, "low_vent": 0.1, "high_vent": 5.0,
}

# The percentiles of the per-position entropy / varentropy the family thresholds are.
DEFAULT_PERCENTILES: dict[str, float] = {
    "low_ent": 20.0, "med_ent": 60.0, "high_ent": 90.0, "low_vent": 20.0, "high_vent": 80.0,
}

_FORMAT = "entropic-local/entropix-thresholds"
_VERSION = 1


# ---------------------------------------------------------------------------------------
# Thresholds


@dataclass(frozen=True)
class Thresholds:
    """The five quadrant bounds, entropy in nats and varentropy in nats², plus where they
    came from. Requires ``0 ≤ low_ent ≤ med_ent ≤ high_ent`` and
    ``0 ≤ low_vent ≤ high_vent`` (finite)."""

    low_ent: float
    med_ent: float
    high_ent: float
    low_vent: float
    high_vent: float
    source: str = ""
    model: str | None = None
    architecture: str | None = None
    percentiles: dict[str, float] | None = None
    n_positions: int | None = None

    def __post_init__(self) -> None:
        for name in THRESHOLD_NAMES:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
                raise ValueError(f"threshold {name} must be a number, got {v!r}")
            v = float(v)
            if not (math.isfinite(v) and v >= 0.0):
                raise ValueError(f"threshold {name}={v!r} must be finite and non-negative")
            object.__setattr__(self, name, v)
        err = order_error({n: getattr(self, n) for n in THRESHOLD_NAMES})
        if err:
            raise ValueError(err)
        if self.percentiles is not None:
            object.__setattr__(self, "percentiles",
                               {str(k): float(v) for k, v in self.percentiles.items()})

    # -- conversions -----------------------------------------------------------------------
    @classmethod
    def from_bits(cls, low_ent: float, med_ent: float, high_ent: float, low_vent: float,
                  high_vent: float, **meta: Any) -> "Thresholds":
        """From bounds in bits / bits²: entropy × ln 2, varentropy × (ln 2)²."""
        return cls(low_ent * LN2, med_ent * LN2, high_ent * LN2,
                   low_vent * LN2 ** 2, high_vent * LN2 ** 2, **meta)

    def to_bits(self) -> dict[str, float]:
        """The bounds in bits / bits² (display only)."""
        return {"low_ent": self.low_ent / LN2, "med_ent": self.med_ent / LN2,
                "high_ent": self.high_ent / LN2, "low_vent": self.low_vent / LN2 ** 2,
                "high_vent": self.high_vent / LN2 ** 2}

    def values(self) -> dict[str, float]:
        return {n: getattr(self, n) for n in THRESHOLD_NAMES}

    def replace(self, **changes: Any) -> "Thresholds":
        d = asdict(self)
        d.update(changes)
        return Thresholds(**d)

    # -- files -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"format": _FORMAT, "version": _VERSION,
                             "units": {"entropy": "nats", "varentropy": "nats^2"}}
        d.update(self.values())
        for key in ("source", "model", "architecture", "percentiles", "n_positions"):
            v = getattr(self, key)
            if v is not None and v != "":
                d[key] = v
        return d

    def save(self, path: str | os.PathLike) -> None:
        """Write the thresholds as a small JSON file (nats)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Thresholds":
        """Read a file written by ``save``. Raises ``UsageError`` naming what is wrong."""
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except OSError as e:
            raise UsageError(f"cannot read entropix thresholds {os.fspath(path)!r}: "
                             f"{e.strerror or e}") from None
        except json.JSONDecodeError as e:
            raise UsageError(f"entropix thresholds {os.fspath(path)!r} are not JSON: {e}") from None
        return cls.from_dict(d, where=os.fspath(path))

    @classmethod
    def from_dict(cls, d: Any, where: str = "thresholds") -> "Thresholds":
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise UsageError(f"{where} is not an entropix thresholds file "
                             f"(expected \"format\": \"{_FORMAT}\")")
        if d.get("version") != _VERSION:
            raise UsageError(f"{where}: unsupported version {d.get('version')!r} "
                             f"(this build reads version {_VERSION})")
        units = d.get("units", {})
        if units and (units.get("entropy") != "nats" or units.get("varentropy") != "nats^2"):
            raise UsageError(f"{where}: thresholds must be in nats / nats^2, got {units!r}")
        missing = [n for n in THRESHOLD_NAMES if n not in d]
        if missing:
            raise UsageError(f"{where}: missing {', '.join(missing)}")
        meta = {k: d[k] for k in ("source", "model", "architecture", "percentiles",
                                  "n_positions") if k in d}
        try:
            return cls(**{n: d[n] for n in THRESHOLD_NAMES}, **meta)
        except (TypeError, ValueError) as e:
            raise UsageError(f"{where}: {e}") from None


def order_error(v: Mapping[str, float | None]) -> str | None:
    """The first violated ordering among the given (non-None) bounds, or None."""
    pairs = (("low_ent", "med_ent"), ("med_ent", "high_ent"), ("low_ent", "high_ent"),
             ("low_vent", "high_vent"))
    for a, b in pairs:
        x, y = v.get(a), v.get(b)
        if x is not None and y is not None and x > y:
            return (f"entropix thresholds: {a}={format_value(float(x))} is above "
                    f"{b}={format_value(float(y))} (need low_ent ≤ med_ent ≤ high_ent and "
                    f"low_vent ≤ high_vent)")
    return None


UPSTREAM = Thresholds.from_bits(**UPSTREAM_BITS, source="upstream entropix defaults (bits)")

# ``calibrate(model, CALIBRATION_TEXT)`` with DEFAULT_PERCENTILES, rounded to 0.01
# (regenerate: ``python benchmarks/calibrate_entropix.py smollm2-135m gemma3-270m``).
FAMILY_THRESHOLDS: dict[str, Thresholds] = {
    "llama": Thresholds(0.87, 2.51, 4.41, 2.14, 6.91, architecture="llama",
                        source="family llama: SmolLM2-135M-Instruct Q4_1, CALIBRATION_TEXT",
                        percentiles=DEFAULT_PERCENTILES, n_positions=333),
    "gemma3": Thresholds(1.26, 2.79, 4.41, 2.29, 6.50, architecture="gemma3",
                         source="family gemma3: Gemma-3-270M Q4_K_M, CALIBRATION_TEXT",
                         percentiles=DEFAULT_PERCENTILES, n_positions=331),
}


def _generic() -> Thresholds:
    fams = list(FAMILY_THRESHOLDS.values())
    mean = {n: round(sum(getattr(t, n) for t in fams) / len(fams), 2) for n in THRESHOLD_NAMES}
    return Thresholds(**mean, source="generic: mean of the measured families "
                      + ", ".join(FAMILY_THRESHOLDS), percentiles=DEFAULT_PERCENTILES)


GENERIC = _generic()


def thresholds_for(architecture: str | None) -> Thresholds:
    """The default thresholds of a GGUF ``general.architecture`` (``GENERIC`` if unknown)."""
    if architecture is not None and architecture in FAMILY_THRESHOLDS:
        return FAMILY_THRESHOLDS[architecture]
    return GENERIC
