"""Named chains: a whole spec may be one of these names (``--sampler aes``).

* ``greedy``: always the most likely token.
* ``llama``: ``top_k=40,top_p=0.95,min_p=0.05,temp=0.8`` (+ ``dist``): llama.cpp's default
  chain (``common_params_sampling``) and llama-cpp-python's ``create_completion`` defaults.
  Left out because they are off by default there: penalties (repeat 1.0, freq 0, presence 0,
  last_n 64), DRY (multiplier 0), top-nσ (-1), typical-p (1.0), XTC (probability 0), dynamic
  temperature (range 0), mirostat (0), logit bias (none).
* ``free_energy``: ``free_energy:w=1.5,t=0.8``: an energy window ``w = 1.5`` (min-p ≈ 0.22
  at T = 1) sampled at T = 0.8: min-p and temperature without top-k and top-p, which an
  energy window makes redundant.
* ``thermostat``: ``thermostat=0.75``: window ``w = 3``, T chosen per step so that the kept
  distribution's entropy is 0.75 nats (about e^0.75 ≈ 2.1 effective choices per token), T in
  [0.25, 2].
* ``aes``: adaptive entropy sparsity with its defaults (``samplers/stages/entmax.py``).
* ``entropix``: Entropix with its defaults (``samplers/stages/entropix.py``).

The ``free_energy`` and ``thermostat`` settings (and entropix's ``best_of``) were chosen on the
generation-quality frontier of a development text (``benchmarks/tune_frontier.py``; the
rule and the figures: README, "Which sampler?"). A stage spec with parameters
(``thermostat:w=2``) starts from the stage's own defaults, not from its preset.
"""

from __future__ import annotations

__all__ = ["PRESETS"]

PRESETS: dict[str, str] = {
    "greedy": "greedy",
    "llama": "top_k=40,top_p=0.95,min_p=0.05,temp=0.8",
    "free_energy": "free_energy:w=1.5,t=0.8",
    "thermostat": "thermostat=0.75",
    "aes": "aes",
    "entropix": "entropix",
}
