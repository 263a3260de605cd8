"""The sampler interface, llama.cpp's ``llama_sampler_i`` in Python.

A sampler *applies* itself to the current candidates (filtering, transforming or
selecting), *accepts* the token that was finally chosen (to keep history such as penalty
counts), can be *reset* to its initial state (optionally with a new seed) and *cloned*
(for per-sequence state in batched decoding). ``SamplerChain`` is itself a sampler.

The optional parts are declared here with their defaults, so callers never probe for them:
``selects`` and ``stochastic`` (class flags), ``seed``, ``distribution`` (the probabilities
the stage would draw from), ``bind`` (adapt to a model), ``sequences_needed`` (KV sequences
the decode loop must provide) and ``info`` (what the stage decided on its last step).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from .candidates import Candidates


class Sampler:
    """One stage of a sampler chain. Subclasses set ``name`` and override ``apply``."""

    name: ClassVar[str] = ""
    selects: ClassVar[bool] = False      # sets ``cands.selected``: must end a chain
    stochastic: ClassVar[bool] = False   # draws random numbers (reseeded by ``reset``)

    def apply(self, cands: "Candidates") -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def accept(self, token: int) -> None:
        """Record the token finally chosen this step (default: stateless)."""

    def reset(self, seed: int | None = None) -> None:
        """Return to the initial state; samplers that draw random numbers reseed."""

    def clone(self) -> "Sampler":
        return copy.deepcopy(self)

    def spec(self) -> str:  # pragma: no cover - interface
        """This stage as it is written in a chain spec string."""
        raise NotImplementedError

    # -- optional hooks, with their defaults ----------------------------------------------
    @property
    def seed(self) -> int | None:
        """The seed of this stage's random stream (None: it draws nothing)."""
        return None

    def distribution(self, cands: "Candidates") -> "np.ndarray | None":
        """The probabilities with which this (stochastic) stage would choose among the live
        candidates, aligned with ``cands.ids[:cands.n]`` after the call (the stage may
        truncate to its support); draws nothing. None (the default): softmax of the live
        logits, what ``dist`` draws from."""
        return None

    def bind(self, model: Any) -> "Sampler":
        """Adapt to the model about to generate (an ``entropic_local.Model`` or an
        ``Engine``: its tokenizer, metadata); returns the stage. Default: nothing to do."""
        return self

    @property
    def sequences_needed(self) -> int:
        """KV sequences the context must hold for this stage (more than 1: branching)."""
        return 1

    def info(self) -> dict[str, Any] | None:
        """What the stage decided on its last ``apply`` (for per-step records), or None."""
        return None

    # -- identity ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec()}>"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.spec() == other.spec()  # type: ignore[union-attr]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.spec()))


def reports_info(stage: Sampler) -> bool:
    """Whether ``stage`` overrides ``info`` (the chain asks only those, every step)."""
    return type(stage).info is not Sampler.info
