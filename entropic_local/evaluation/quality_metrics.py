"""Measures of generated text: diversity and degeneration, on words.

Every measure works on *words*: ``words(text)`` splits a text into runs of word characters
and single punctuation marks (``re.findall(r"\\w+|[^\\w\\s]", text)``), so the figures are
comparable between models whose tokenizers differ.

``distinct_n(texts, n)`` (Li et al. 2016, "A Diversity-Promoting Objective Function for
Neural Conversation Models")
    The number of distinct n-grams over the number of n-grams, pooled over ``texts`` (the
    samples of one prompt): ``|∪ ngrams| / Σ |ngrams|``, in [0, 1]; NaN with no n-gram.
    1 when no n-gram repeats within or across the samples.

``self_bleu(texts)`` (Zhu et al. 2018, "Texygen")
    The mean over the samples of BLEU of that sample against all the others as references,
    sentence BLEU of sacrebleu (``BLEU(effective_order=True)``: its default 13a tokenizer
    and exponential smoothing), on sacrebleu's 0-100 scale. High: the samples resemble each
    other (low diversity). NaN with fewer than two non-empty samples.

``seq_rep_n(words, n=4)`` (Welleck et al. 2019, "Neural Text Generation with Unlikelihood
Training")
    The share of repeated n-grams within one continuation: ``1 - |unique ngrams| /
    |ngrams|``, in [0, 1); NaN when the text has fewer than ``n`` words. (Welleck et al.
    count model tokens; here words.)

``ends_in_loop(words)``
    Whether the continuation ends in a loop: for some period ``p`` in ``1..LOOP_MAX_PERIOD``
    its last ``max(3p, LOOP_MIN_WORDS)`` words repeat with period ``p`` (``w[i] = w[i - p]``
    over that tail), i.e. the final unit of ``p`` words appears at least three times in a row
    and covers at least 10 words. "the cat sat. the cat sat. the cat sat." (p = 4, 12 words)
    is a loop; "a b a b" (8 words needed for p = 2 at 10 words) is not.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

from ..errors import EntropicError

__all__ = ["words", "ngrams", "distinct_n", "self_bleu", "seq_rep_n", "ends_in_loop",
           "LOOP_MAX_PERIOD", "LOOP_MIN_WORDS", "require_sacrebleu"]

_WORD = re.compile(r"\w+|[^\w\s]")
LOOP_MAX_PERIOD = 16
LOOP_MIN_WORDS = 10


def words(text: str) -> list[str]:
    """Runs of word characters and single punctuation marks, in order."""
    return _WORD.findall(text)


def ngrams(ws: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """The n-grams of ``ws`` in order (none when it has fewer than n words)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return [tuple(ws[i:i + n]) for i in range(len(ws) - n + 1)]


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams, pooled over ``texts`` (NaN without n-grams)."""
    total = 0
    seen: set[tuple[str, ...]] = set()
    for t in texts:
        g = ngrams(words(t), n)
        total += len(g)
        seen.update(g)
    return len(seen) / total if total else math.nan


SACREBLEU_MISSING = "sacrebleu is not installed: pip install 'entropic-local[frontier]'"


def require_sacrebleu():
    """sacrebleu's ``BLEU`` class, or one clear error."""
    try:
        from sacrebleu.metrics import BLEU
    except ImportError:
        raise EntropicError(SACREBLEU_MISSING) from None
    return BLEU


def self_bleu(texts: Sequence[str]) -> float:
    """Mean sentence BLEU (sacrebleu, 0-100) of each sample against the others."""
    BLEU = require_sacrebleu()
    live = [t for t in texts if t.strip()]
    if len(live) < 2:
        return math.nan
    bleu = BLEU(effective_order=True)
    scores = [bleu.sentence_score(h, live[:i] + live[i + 1:]).score for i, h in enumerate(live)]
    return sum(scores) / len(scores)


def seq_rep_n(ws: Sequence[str], n: int = 4) -> float:
    """``1 - |unique n-grams| / |n-grams|`` of one continuation (NaN below n words)."""
    g = ngrams(ws, n)
    if not g:
        return math.nan
    return 1.0 - len(set(g)) / len(g)


def ends_in_loop(ws: Sequence[str], max_period: int = LOOP_MAX_PERIOD,
                 min_words: int = LOOP_MIN_WORDS) -> bool:
    """Whether the last ``max(3p, min_words)`` words repeat with some period ``p ≤ max_period``."""
    n = len(ws)
    for p in range(1, max_period + 1):
        tail = max(3 * p, min_words)
        if tail > n:
            break
        start = n - tail
        if all(ws[i] == ws[i - p] for i in range(start + p, n)):
            return True
    return False
