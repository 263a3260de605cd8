"""Record what the package outputs for fixed seeds, to compare two versions byte for byte.

    python benchmarks/fixed_outputs.py OUT_DIR            # record (both test models)
    python benchmarks/fixed_outputs.py --root OLD_CHECKOUT BEFORE_DIR    # another version
    diff -r BEFORE_DIR OUT_DIR                            # nothing printed: identical

Each case is one file in OUT_DIR: the stdout, stderr and exit status of one command run as
a user runs it (``python -m entropic_local ...``, ``ENTROPIC_LOCAL_THREADS=1``), with what
depends on the clock removed: ``timings``, ``seconds``, ``created`` and every ``*_ms`` /
``*_tps`` field. Cases: ``generate --json`` with a dozen sampler chains and flags,
``batch`` (plain, OpenAI-shaped, per-line settings, a bad line), ``eval`` (``--json`` and
the table, entmax attention), piped ``chat`` with ``/set``, sampler-spec errors, and the
Python-only paths (chain specs after ``with_params``, the logits processor on fixed
scores). ``--only NAME`` runs the cases whose name contains NAME.

numba compiles a kernel on its first use and caches it beside the package; a kernel compiled
in the running process can differ in the last bits of a float sum from the same kernel
loaded from the cache (entropy 0.819631944787063 against 0.8196319447870631). So compare
runs of warm caches: ``--warm`` runs every case once, unrecorded, before recording.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent    # the checkout whose package runs (--root)
SEED_NAME = Path("shared") / "seed" / "000_2a5b1666b09d7513.txt"   # next to the checkout, or above
SEED_TEXT = next((d / SEED_NAME for d in Path(__file__).resolve().parents if (d / SEED_NAME).is_file()),
                 SEED_NAME)
MODELS = ("smollm2-135m", "gemma3-270m")
CLOCK_KEYS = {"timings", "seconds", "created"}

GENERATE = {
    "llama": ["The capital of France is", "-n", "24", "--seed", "1"],
    "greedy": ["Once upon a time", "-n", "16", "--sampler", "greedy", "--seed", "1"],
    "aes-temp": ["The meaning of life is", "-n", "24", "--sampler", "aes", "--temp", "0.7", "--seed", "3"],
    "entropix-attn": ["The sky is blue because", "-n", "24", "--sampler", "entropix", "--attention", "last",
                      "--seed", "5"],
    "entropix-fork": ["Write a short story about a dragon:", "-n", "32", "--sampler", "entropix:fork=4",
                      "--seed", "7"],
    "thermostat": ["A poem about entropy:", "-n", "24", "--sampler", "thermostat", "--seed", "2"],
    "flags": ["A poem about entropy:", "-n", "24", "--temp", "1.2", "--top-k", "0", "--min-p", "0.1",
              "--repeat-penalty", "1.1", "--seed", "7"],
    "penalties-stop": ["The sky is blue because", "-n", "48", "-s",
                       "penalties:repeat=1.1,last_n=64,top_k=40,temp=0.7", "--stop", ".", "--seed", "4"],
    "free-energy": ["Hello", "-n", "20", "--sampler", "free_energy", "--seed", "9"],
    "dyn-temp": ["Hello", "-n", "20", "-s", "dyn_temp:base=0.8,delta=0.5", "--top-p", "0.9", "--seed", "11"],
    "entmax": ["Hello", "-n", "20", "-s", "entmax:alpha=1.2,t=0.9", "--seed", "2"],
    "typical-sigma": ["Hello", "-n", "20", "-s", "top_n_sigma=1.5,typical_p=0.9,temp=0.9", "--seed", "6"],
    "bias": ["Hello", "-n", "12", "-s", "logit_bias:13=-inf,30=2.5,top_k=10", "--seed", "8"],
}

BATCH_LINES = [
    {"custom_id": "a", "prompt": "Once upon a time", "max_tokens": 12},
    {"custom_id": "b", "prompt": "The capital of France is", "temperature": 0.5, "top_k": 5, "seed": 3},
    {"custom_id": "c", "method": "POST", "url": "/v1/chat/completions",
     "body": {"messages": [{"role": "user", "content": "Hi!"}], "temperature": 0.7, "max_tokens": 10}},
    {"custom_id": "d", "prompt": "A poem about entropy:", "sampler": "aes", "top_p": 0.9},
    {"custom_id": "e", "prompt": "Hello", "sampler": "topk=3"},
    "not json",
    {"custom_id": "f", "prompt": "The sky is", "sampler": "entropix", "min_p": 0.05, "stop": ["."]},
]

EVAL_SAMPLERS = ["softmax=temp=1.0", "top-k=top_k=40", "min-p=min_p=0.1", "entmax=entmax:alpha=1.5",
                 "aes=aes", "thermostat=thermostat", "entropix=entropix", "llama=llama",
                 "free_energy=free_energy", "pen=penalties:repeat=1.3,dist"]

CHAT_INPUT = "Hi!\n/set temp 0.5\n/set top_k 7\nWhat is 2+2?\n/set sampler aes\n/set aes.t 0.8\n" \
             "Tell me a joke.\n/show params\n"

SPEC_ERRORS = ["topk=3", "top_p=1.5", "top_k=40,,temp=0.8", "greedy,top_k=3", "temp=0.5,dyn_temp:base=1",
               "penalties=2", "llama,top_k=4", "entropix:low_ent=3,med_ent=1", "aes:s_lo=4,s_hi=3"]


def scrub(obj):
    """``obj`` without the fields that depend on the clock."""
    if isinstance(obj, dict):
        return {k: scrub(v) for k, v in obj.items()
                if k not in CLOCK_KEYS and not k.endswith("_ms") and not k.endswith("_tps")}
    if isinstance(obj, list):
        return [scrub(v) for v in obj]
    return obj


def scrub_json_lines(text: str) -> str:
    out = []
    for line in text.splitlines():
        try:
            out.append(json.dumps(scrub(json.loads(line)), ensure_ascii=False, sort_keys=True))
        except ValueError:
            out.append(line)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def run(args, stdin=None, json_out=False):
    env = {**os.environ, "ENTROPIC_LOCAL_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "entropic_local", *args], input=stdin, capture_output=True,
                       text=True, env=env, cwd=str(ROOT), timeout=900)
    out = r.stdout
    if json_out:
        try:
            out = json.dumps(scrub(json.loads(out)), ensure_ascii=False, indent=1, sort_keys=True) + "\n"
        except ValueError:
            pass
    return f"$ entropic-local {' '.join(args)}\nexit {r.returncode}\n--- stdout\n{out}--- stderr\n{r.stderr}"


def python_only() -> str:
    """Chain specs after flag overrides, and the logits processor on fixed scores."""
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from entropic_local.samplers import SamplerChain

    lines = []
    bases = ["llama", "greedy", "aes", "entropix", "thermostat", "free_energy", "dyn_temp:base=0.8,delta=0.5",
             "penalties:repeat=1.1,top_k=40", "top_p:p=0.9,min_keep=3,temp=0.7", "entmax", "logit_bias:5=-inf"]
    overrides = [{}, {"temp": 0.7}, {"temp": 0.0}, {"top_k": 0}, {"top_k": 5, "top_p": 1.0}, {"min_p": 0.0},
                 {"repeat_penalty": 1.2}, {"typical_p": 0.5, "top_n_sigma": 2.0}, {"dynatemp_range": 0.3},
                 {"frequency_penalty": 0.5, "penalty_last_n": 32}, {"dynatemp_range": 0.0, "temp": 1.1},
                 {"presence_penalty": 0.2, "repeat_penalty": 1.0}, {"dynatemp_exponent": 2.0}]
    for b in bases:
        for o in overrides:
            try:
                got = str(SamplerChain.parse(b).with_params(**o))
            except Exception as e:  # noqa: BLE001 - the message is the behaviour
                got = f"{type(e).__name__}: {e}"
            lines.append(f"{b} {o} -> {got}")
    rng = np.random.default_rng(0)
    scores = rng.normal(0, 3, 4096).astype(np.float32)
    ids = rng.integers(0, 4096, 20).astype(np.intc)
    for spec in ["llama", "greedy", "aes", "entmax=1.7", "entropix", "thermostat",
                 "penalties:repeat=1.3,min_p=0.05", "top_n_sigma=1.0,min_p=0.05"]:
        chain = SamplerChain.parse(spec, seed=1)
        out = chain(ids, scores)
        out2 = chain(np.concatenate([ids, ids[:3]]), scores * 0.5)
        h = hashlib.sha256(out.tobytes() + out2.tobytes()).hexdigest()[:16]
        lines.append(f"processor {spec}: {h} kept {int(np.isfinite(out).sum())}/{int(np.isfinite(out2).sum())}")
    return "\n".join(lines) + "\n"


def cases(tmp: Path):
    for model in MODELS:
        for name, args in GENERATE.items():
            yield f"generate-{model}-{name}", lambda a=args, m=model: run(["generate", *a, "-m", m, "--json"],
                                                                           json_out=True)
        yield f"chat-{model}", lambda m=model: run(["chat", m, "--seed", "3", "-n", "16"], stdin=CHAT_INPUT)
        yield f"eval-{model}-json", lambda m=model: run(
            ["eval", str(SEED_TEXT), "-m", m, "-n", "40", *sum((["-s", s] for s in EVAL_SAMPLERS), []),
             "--json"], json_out=True)
        yield f"eval-{model}-table", lambda m=model: run(
            ["eval", str(SEED_TEXT), "-m", m, "-n", "30", "-s", "aes=aes", "-s", "llama=llama"])

        def batch(m=model):
            inp = tmp / f"in-{m}.jsonl"
            out = tmp / f"out-{m}.jsonl"
            inp.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in BATCH_LINES))
            if out.exists():
                out.unlink()
            r = run(["batch", str(inp), "-o", str(out), "-m", m, "-n", "16", "--parallel", "2", "--seed", "1",
                     "--steps", "-s", "llama"])
            rows = sorted(out.read_text().splitlines(), key=lambda ln: json.loads(ln)["custom_id"])
            # the summary line on stderr holds a time and a rate
            r = "\n".join(ln.replace(str(tmp), "TMP") for ln in r.splitlines() if not ln.startswith("batch: "))
            return r + "\n--- rows\n" + scrub_json_lines("\n".join(rows) + "\n")

        yield f"batch-{model}", batch
    yield "eval-smollm2-attention-entmax", lambda: run(
        ["eval", str(SEED_TEXT), "-n", "30", "-s", "softmax=temp=1.0", "--attention-entmax", "adaptive"])
    for i, spec in enumerate(SPEC_ERRORS):
        yield f"spec-error-{i}", lambda s=spec: run(["generate", "x", "-s", s])
    yield "python-only", python_only


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="directory to write the case files into")
    ap.add_argument("--only", default="", help="run only the cases whose name contains this")
    ap.add_argument("--warm", action="store_true", help="run every case once before recording")
    ap.add_argument("--root", default=None, help="the checkout to run (default: this one)")
    ap.add_argument("--seed-text", default=None, help="the text eval scores (default: the shared seed)")
    a = ap.parse_args()
    global ROOT, SEED_TEXT
    if a.root:
        ROOT = Path(a.root).resolve()
    if a.seed_text:
        SEED_TEXT = Path(a.seed_text).resolve()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for record in ([False, True] if a.warm else [True]):
            for name, fn in cases(Path(tmp)):
                if a.only and a.only not in name:
                    continue
                text = fn()
                if record:
                    (out / f"{name}.txt").write_text(text, encoding="utf-8")
                print(name if record else f"(warming) {name}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
