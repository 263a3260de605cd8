"""A judge model's log-probability of continuations given their prompts, batched.

``score_continuations(judge, items)`` takes ``(prompt, continuation)`` text pairs. The prompt
is tokenised by the judge with its special tokens (BOS where it has one), the continuation
without, and the continuation's tokens are teacher-forced after the prompt: the judge's
log-probability of continuation token ``c_j`` is ``z[c_j] - log Z`` of the logits after
``prompt + c_{<j}`` (temperature 1, the full vocabulary; ``kernels.logit_stats`` gives
``log Z``). The result per item: the summed log-probability, the number of judged tokens and
the judge's mean entropy over those positions; the judge's perplexity of a continuation is
``exp(-logprob / tokens)``.

Items sharing a prompt share its KV cells: the prompt is decoded once into sequence 0 of a
multi-sequence context (the judge's batch context, ``Model.batch_engine``), each of its
continuations gets a sequence that shares those cells (``seq_copy``, no data copied), and
the continuations' tokens go through ``llama_decode`` together, ``n_batch`` entries at a
time, with logits for every token. Batching moves the numbers by llama.cpp's batching noise
only (the same prompt+continuation scored alone, one token at a time, agrees within the
tolerance ``tests/model/test_frontier.py`` states).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

from ..errors import ContextOverflow, DecodeError, UsageError
from ..kernels import logit_stats
from .model_access import holding

__all__ = ["JudgeScore", "score_continuations", "judge_tokens", "OUTPUT_FLOATS"]

OUTPUT_FLOATS = 1 << 26


class JudgeScore(NamedTuple):
    logprob: float      # Σ log p_judge(c_j | prompt, c_<j), nats
    tokens: int         # judged continuation tokens
    entropy: float      # the judge's mean entropy (nats) over those positions; NaN if none


def judge_tokens(engine: Any, prompt: str, continuation: str) -> tuple[list[int], list[int]]:
    """The judge's tokens of a prompt (special tokens added) and of its continuation (none)."""
    p = list(engine.tokenize(prompt, add_special=True, parse_special=False))
    c = list(engine.tokenize(continuation, add_special=False, parse_special=False)) if continuation else []
    return p, c


def _gold(raw, token: int) -> tuple[float, float]:
    _, log_z, h, _ = logit_stats(raw, 1.0)
    return float(raw[token]) - float(log_z), float(h)


def score_continuations(judge: Any, items: Sequence[tuple[str, str]], *, parallel: int = 16,
                        max_tokens: int | None = None) -> list[JudgeScore]:
    """Score every ``(prompt, continuation)`` of ``items`` with ``judge`` (an
    ``entropic_local.Model``); at most ``max_tokens`` continuation tokens each (None: all).
    ``parallel`` continuations share one decode. Results in input order."""
    parallel = int(parallel)
    if not 1 <= parallel <= 255:
        raise UsageError(f"parallel must be between 1 and 255, got {parallel}")
    base = judge.engine
    toks = [judge_tokens(base, p, c) for p, c in items]
    if max_tokens is not None:
        toks = [(p, c[:max_tokens]) for p, c in toks]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (p, _) in enumerate(toks):
        groups.setdefault(tuple(p), []).append(i)
    longest_p = max((len(p) for p, _ in toks), default=1)
    longest_c = max((len(c) for _, c in toks), default=1)
    n_cells = longest_p + parallel * max(1, longest_c)
    n_cells = max(256, -(-n_cells // 256) * 256)
    out: list[JudgeScore | None] = [None] * len(toks)
    with holding(judge):
        engine = judge.batch_engine(parallel + 1, n_cells)
        # at most OUTPUT_FLOATS logits per decode (llama.cpp keeps them all: Gemma 3's 262,144-token
        # vocabulary at 512 outputs would be 512 MiB)
        n_batch = max(16, min(engine.n_batch, OUTPUT_FLOATS // engine.n_vocab))
        for prompt, members in groups.items():
            engine.seq_remove(-1)
            _decode(engine, [(t, j, 0, j == len(prompt) - 1) for j, t in enumerate(prompt)], n_batch)
            first = engine.logits_at(_last_entry(len(prompt), n_batch)).copy()
            for k in range(0, len(members), parallel):
                chunk = members[k:k + parallel]
                acc = {i: [0.0, 0, 0.0] for i in chunk}
                entries: list[tuple[int, int, int, bool]] = []
                targets: list[tuple[int, int]] = []   # (item, gold token) of each output entry
                for s, i in enumerate(chunk, start=1):
                    c = toks[i][1]
                    if not c:
                        continue
                    lp, h = _gold(first, c[0])
                    acc[i][0] += lp
                    acc[i][1] += 1
                    acc[i][2] += h
                    engine.seq_copy(0, s)
                    for j in range(len(c) - 1):   # the last token predicts nothing judged
                        entries.append((c[j], len(prompt) + j, s, True))
                        targets.append((i, c[j + 1]))
                for b in range(0, len(entries), n_batch):
                    part = entries[b:b + n_batch]
                    _check(engine.decode_entries(part))
                    for e in range(len(part)):
                        i, gold = targets[b + e]
                        lp, h = _gold(engine.logits_at(e), gold)
                        acc[i][0] += lp
                        acc[i][1] += 1
                        acc[i][2] += h
                for s in range(1, len(chunk) + 1):
                    engine.seq_remove(s)
                for i, (lp, n, h) in acc.items():
                    out[i] = JudgeScore(lp, n, h / n if n else float("nan"))
        engine.seq_remove(-1)
    return out  # type: ignore[return-value]


def _last_entry(n: int, n_batch: int) -> int:
    """Index in its batch of entry ``n - 1`` when ``n`` entries go ``n_batch`` at a time."""
    return (n - 1) % n_batch


def _decode(engine: Any, entries: list[tuple[int, int, int, bool]], n_batch: int) -> None:
    for b in range(0, len(entries), n_batch):
        _check(engine.decode_entries(entries[b:b + n_batch]))


def _check(rc: int) -> None:
    if rc == 1:
        raise ContextOverflow("the judge's batch cache is full")
    if rc != 0:
        raise DecodeError(f"llama_decode failed with code {rc} while judging")
