"""Named chains: a whole spec may be one of these names (``--sampler aes``).

* ``greedy``: always the most likely token.
* ``llama``: ``top_k=40,top_p=0.95,min_p=0.05,temp=0.8`` (+ ``dist``): llama.cpp's default
  chain (``common_params_sampling``) and llama-cpp-python's ``create_completion`` defaults.
  Left out because they are off by default there: penalties (repeat 1.0, freq 0, presence 0,
  last_n 64), DRY (multiplier 0), top-nσ (-1), typical-p (1.0), XTC (probability 0), dynamic
  temperature (range 0), mirostat (0), logit bias (none).
* ``free_energy``: ``free_energy:t=0.8``: an energy window ``w = 3`` (min-p ≈ 0.05 at T = 1,
  as ``llama``) sampled at T = 0.8: llama's min-p and temperature without its top-k and
  top-p, which an energy window makes redundant.
* ``thermostat``: window ``w = 3``, T chosen per step so that the kept distribution's
  entropy is 1.0 nats (about e ≈ 2.7 effective choices per token), T in [0.25, 2].
* ``aes``: adaptive entropy sparsity with its defaults (``samplers/stages/entmax.py``).
* ``entropix``: Entropix with its defaults (``samplers/stages/entropix.py``).
"""

from __future__ import annotations

__all__ = ["PRESETS"]

PRESETS: dict[str, str] = {
    "greedy": "greedy",
    "llama": "top_k=40,top_p=0.95,min_p=0.05,temp=0.8",
    "free_energy": "free_energy:t=0.8",
    "thermostat": "thermostat",
    "aes": "aes",
    "entropix": "entropix",
}
