"""Calibrating Entropix's thresholds for a model: percentiles of its own entropy and
varentropy, teacher-forced over a text (the family defaults in
``samplers/entropix_thresholds.py`` were made this way, on ``CALIBRATION_TEXT``: prose,
dialogue, a recipe, a Python function; about 330 tokens)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..decode.teacher import teacher_forced, text_positions
from ..errors import UsageError
from ..samplers.entropix_thresholds import DEFAULT_PERCENTILES, THRESHOLD_NAMES, Thresholds, order_error
from .model_access import holding, model_engine

__all__ = ["calibrate", "CALIBRATION_TEXT", "MIN_CALIBRATION_POSITIONS"]

MIN_CALIBRATION_POSITIONS = 8

CALIBRATION_TEXT = """\
The river rises in the hills to the north of the town and flows south through a wide valley \
of farms and small villages. In spring, melting snow fills it to the edge of its banks, and \
the old stone bridge near the market is sometimes closed for a few days.

"Will it flood again this year?" asked Anna, looking at the grey water from the window of \
the bakery.
"Probably not," her father said. "The snow was light, and the new wall should hold."

The town council met on Tuesday to discuss the budget. Three items were on the agenda: \
repairs to the school roof, a new bus route to the hospital, and the cost of clearing the \
riverbank. After two hours of debate, the members agreed to fund the roof and the bus route, \
but postponed the riverbank work until autumn.

To make a simple bread, mix 500 grams of flour, 10 grams of salt, 7 grams of dried yeast and \
350 millilitres of warm water. Knead the dough for ten minutes, leave it to rise for an hour, \
shape it into a loaf and bake it at 220 degrees for about thirty-five minutes.

def mean(values):
    \"\"\"Return the arithmetic mean of a list of numbers.\"\"\"
    if not values:
        raise ValueError("empty list")
    return sum(values) / len(values)

Photosynthesis is the process by which green plants use sunlight to turn water and carbon \
dioxide into sugar and oxygen. It takes place mainly in the leaves, inside small structures \
called chloroplasts.
"""


def calibrate(model: Any, text: str = CALIBRATION_TEXT,
              percentiles: Mapping[str, float] | None = None, *,
              max_tokens: int | None = None) -> Thresholds:
    """Thresholds from the percentiles of the model's own entropy / varentropy over a text.

    ``model`` is an ``entropic_local.Model`` or an ``Engine``. The text is teacher-forced
    (``decode.teacher``: the model sees the text, not its own choices, so no sampler is
    involved); at each position the full-vocabulary distribution at T = 1 gives H (nats)
    and V (nats²). A text of N tokens gives N − 1 positions (at most ``max_tokens`` and what
    the context allows; at least 8 needed).
    ``percentiles`` maps threshold names to percentiles in [0, 100] (missing names take
    ``DEFAULT_PERCENTILES``); they must be ordered as the thresholds are, which makes the
    result monotone (``low_ent ≤ med_ent ≤ high_ent``, ``low_vent ≤ high_vent``). The KV
    cache is left holding the text.
    """
    pct = dict(DEFAULT_PERCENTILES)
    if percentiles is not None:
        unknown = set(percentiles) - set(THRESHOLD_NAMES)
        if unknown:
            raise UsageError(f"calibrate: unknown percentile names {sorted(unknown)} "
                             f"(known: {', '.join(THRESHOLD_NAMES)})")
        pct.update({k: float(v) for k, v in percentiles.items()})
    for k, v in pct.items():
        if not 0.0 <= v <= 100.0:
            raise UsageError(f"calibrate: percentile {k}={v} is outside [0, 100]")
    err = order_error(pct)
    if err:
        raise UsageError("calibrate: percentiles out of order: " + err.split(": ", 1)[1])
    if not isinstance(text, str) or not text.strip():
        raise UsageError("calibrate: empty text")
    engine = model_engine(model)
    with holding(model):
        tokens, n, _ = text_positions(engine, text, max_tokens)
        if n < MIN_CALIBRATION_POSITIONS:
            raise UsageError(f"calibrate: the text gives {max(n, 0)} positions, at least "
                             f"{MIN_CALIBRATION_POSITIONS} are needed", hint="give a longer text")
        ent = np.empty(n, dtype=np.float64)
        vent = np.empty(n, dtype=np.float64)
        for i, (_, (_, _, h, v)) in enumerate(teacher_forced(engine, tokens, n)):
            ent[i], vent[i] = h, v
    vals = {}
    for name in THRESHOLD_NAMES:
        x = ent if name.endswith("_ent") else vent
        vals[name] = max(0.0, float(np.percentile(x, pct[name])))
    arch = engine.meta("general.architecture") if hasattr(engine, "meta") else None
    name = getattr(model, "name", None) or getattr(getattr(engine, "path", None), "stem", None)
    return Thresholds(**vals, source="calibrated", model=name, architecture=arch,
                      percentiles=pct, n_positions=n)
