"""The probe's child process: ``python -m entropic_local.engine.probe_child MODEL --repack|--no-repack
[--ubatch N] [--threads T]``.

Loads the model with exactly that configuration and exercises every kind of decode the
package does: a 48-token prompt in one batch, single tokens, and one batch of four
sequences. Exit status 0: all logits finite. A crash in llama.cpp ends the process by a
signal, which the parent reads as unsafe; non-finite logits exit with status 3.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

PROMPT = ("A probe of the matrix kernels: several rows per product, then one, then a batch of "
          "sequences. " * 4)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="probe_child")
    ap.add_argument("model")
    ap.add_argument("--repack", dest="repack", action="store_true", default=True)
    ap.add_argument("--no-repack", dest="repack", action="store_false")
    ap.add_argument("--ubatch", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)

    from .llama_engine import Engine

    eng = Engine(a.model, n_ctx=512, n_batch=64, n_ubatch=a.ubatch, repack=a.repack, n_threads=a.threads,
                 n_seq_max=4, probe=False)
    tokens = eng.tokenize(PROMPT)[:48]
    eng.eval_prompt(tokens)
    ok = bool(np.isfinite(eng.logits()).all())
    for _ in range(2):
        eng.eval_token(int(np.argmax(eng.logits())))
        ok &= bool(np.isfinite(eng.logits()).all())
    n = len(eng.tokens)
    last = int(np.argmax(eng.logits()))
    for s in range(1, 4):
        eng.seq_copy(0, s)
    rc = eng.decode_entries([(last, n, s, True) for s in range(4)])
    ok &= rc == 0 and all(bool(np.isfinite(eng.logits_at(i)).all()) for i in range(4))
    eng.close()
    if not ok:
        print("non-finite logits or a failed decode", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
