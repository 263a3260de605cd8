"""Entropix's family thresholds, measured again: ``calibrate`` on the calibration text.

    python benchmarks/calibrate_entropix.py [MODEL ...]     (default: both test models)

Prints the five thresholds per model, to compare with ``FAMILY_THRESHOLDS`` in
``entropic_local/samplers/entropix_thresholds.py``.
"""

from __future__ import annotations

import sys

import entropic_local as el
from entropic_local.evaluation.calibrate import CALIBRATION_TEXT, calibrate
from entropic_local.samplers.entropix_thresholds import THRESHOLD_NAMES


def main(names: list[str]) -> int:
    for name in names or ["smollm2-135m", "gemma3-270m"]:
        m = el.load(name, n_ctx=2048)
        th = calibrate(m, CALIBRATION_TEXT)
        vals = ", ".join(f"{n}={getattr(th, n):.2f}" for n in THRESHOLD_NAMES)
        print(f"{name} ({th.architecture}, {th.n_positions} positions): {vals}")
        m.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
