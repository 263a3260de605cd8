"""``entropic-local bench``: tokens/s against llama-cpp-python, side by side, plus kernels.

For each model, one process loads the model twice (our Engine and llama-cpp-python's
``Llama``) with the same context size, threads and flash-attention setting, then alternates
runs: ours with the ``llama`` preset, theirs with ``create_completion(stream=True)`` and the
same settings (top-k 40, top-p 0.95, min-p 0.05, temp 0.8, repeat penalty off), same prompt,
same ``max_tokens`` and seed per round. Generation throughput is timed from the first token
to the last (prompt evaluation excluded, it is the same llama.cpp call on both sides);
end-to-end time including the prompt is reported too. Ratios are medians of per-round
ratios, so both sides see the same machine noise.
"""

from __future__ import annotations

import statistics
import sys
import time

BENCH_PROMPT = (
    "The history of the printing press begins in the fifteenth century, when Johannes "
    "Gutenberg combined several existing technologies into one machine. In the decades that followed,"
)
SETTINGS = dict(top_k=40, top_p=0.95, min_p=0.05, temp=0.8)


def _ours_once(model, n_tokens: int, seed: int, sampler: str = "llama") -> dict:
    model.engine.clear()
    t0 = time.perf_counter()
    first = last = None
    n = 0
    ids = []
    c_first = c_last = 0.0
    for step in model.stream(BENCH_PROMPT, max_tokens=n_tokens, sampler=sampler, seed=seed):
        now, cpu = time.perf_counter(), time.process_time()
        if first is None:
            first, c_first = now, cpu
        last, c_last = now, cpu
        n += 1
        ids.append(step.token_id)
    t_end = time.perf_counter()
    return {"tokens": n, "gen_s": (last - first) if n > 1 else float("nan"), "total_s": t_end - t0,
            "cpu_s": c_last - c_first, "ids": ids}


def _raw_once(model, ids: list[int]) -> dict:
    from ..engine.rawloop import raw_decode

    r = raw_decode(model.engine, model.tokenize(BENCH_PROMPT), ids)
    return {**r, "total_s": r["gen_s"] + r["prompt_s"]}


def _theirs_once(llm, n_tokens: int, seed: int) -> dict:
    llm.reset()  # forget the cached prefix, as we clear ours
    t0 = time.perf_counter()
    first = last = None
    n = 0
    c_first = c_last = 0.0
    for chunk in llm.create_completion(
        BENCH_PROMPT, max_tokens=n_tokens, temperature=SETTINGS["temp"], top_k=SETTINGS["top_k"],
        top_p=SETTINGS["top_p"], min_p=SETTINGS["min_p"], repeat_penalty=1.0, seed=seed, stream=True,
    ):
        if chunk["choices"][0]["finish_reason"] is not None:
            continue  # the closing chunk carries no token
        now, cpu = time.perf_counter(), time.process_time()
        if first is None:
            first, c_first = now, cpu
        last, c_last = now, cpu
        n += 1
    t_end = time.perf_counter()
    return {"tokens": n, "gen_s": (last - first) if n > 1 else float("nan"), "total_s": t_end - t0,
            "cpu_s": c_last - c_first}


def _tps(run: dict, key: str = "gen_s") -> float:
    return (run["tokens"] - 1) / run[key] if run["tokens"] > 1 and run[key] > 0 else float("nan")


def _cpu_tps(run: dict) -> float:
    """Tokens per second of CPU time (this process, all threads): on a machine shared with
    other jobs, time spent descheduled does not count."""
    return _tps(run, "cpu_s")


def bench_model(name: str, *, n_tokens: int, rounds: int, n_threads: int | None, verbose: bool, log,
                presets: tuple[str, ...] = (), attention: str | None = None, engine_opts: dict | None = None,
                profile: bool = False) -> dict:
    from ..api import load
    from ..engine.llama_cpp_python import llama_cpp_llama
    from .profile import profile_ours

    model = load(name, n_ctx=1024, n_threads=n_threads, verbose=verbose, seed=0, **(engine_opts or {}))
    threads = model.n_threads
    # llama-cpp-python with the same (safe) configuration: extra buffer types, n_ubatch, flash attention
    llm = llama_cpp_llama(model.path, config=model.engine.config, n_ctx=1024, verbose=verbose, seed=0)
    # warm-up all three (numba compilation, page cache, thread pools); the raw loop feeds
    # the tokens a real generation chose
    ids = _ours_once(model, n_tokens, 999)["ids"] or [0]
    ids = (ids * (n_tokens // len(ids) + 1))[:n_tokens]
    _theirs_once(llm, 8, 1)
    _raw_once(model, ids[:8])
    if profile:
        out = {"model": name, "engine": model.engine.settings(), "profile": profile_ours(model, n_tokens)}
        del llm
        model.close()
        return out
    ours, theirs, raws = [], [], []
    for r in range(rounds):
        # Both sides must generate the same number of tokens: a seed with which either side
        # meets an end-of-generation token early is skipped (up to a few tries).
        for attempt in range(6):
            seed = 1000 + 10 * r + attempt
            trio = [("ours", lambda: _ours_once(model, n_tokens, seed)),
                    ("theirs", lambda: _theirs_once(llm, n_tokens, seed)),
                    ("raw", lambda: _raw_once(model, ids))]
            if r % 2:  # alternate which side goes first so drift hits all
                trio.reverse()
            res = {who: fn() for who, fn in trio}
            if min(res["ours"]["tokens"], res["theirs"]["tokens"]) >= n_tokens or attempt == 5:
                break
        ours.append(res["ours"])
        theirs.append(res["theirs"])
        raws.append(res["raw"])
        for who in ("ours", "theirs", "raw"):
            log(f"  {name} round {r + 1}/{rounds} {who:6s}: {res[who]['tokens']} tokens, "
                f"{_tps(res[who]):7.1f} tok/s (seed {seed})")
    ratios = [_tps(o) / _tps(t) for o, t in zip(ours, theirs)]
    raw_ratios = [_tps(o) / _tps(w) for o, w in zip(ours, raws)]
    e2e = [(o["tokens"] / o["total_s"]) / (t["tokens"] / t["total_s"]) for o, t in zip(ours, theirs)]
    cpu_ratios = [_cpu_tps(o) / _cpu_tps(t) for o, t in zip(ours, theirs)]
    cpu_raw = [_cpu_tps(o) / _cpu_tps(w) for o, w in zip(ours, raws)]
    out = {
        "model": name,
        "path": str(model.path),
        "n_vocab": model.n_vocab,
        "threads": threads,
        "tokens": n_tokens,
        "rounds": rounds,
        "engine": model.engine.settings(),
        "ours_tps": statistics.median(_tps(o) for o in ours),
        "llama_cpp_python_tps": statistics.median(_tps(t) for t in theirs),
        "raw_tps": statistics.median(_tps(w) for w in raws),
        "ratio": statistics.median(ratios),
        "ratio_raw": statistics.median(raw_ratios),
        "ratio_end_to_end": statistics.median(e2e),
        "ratios": ratios,
        "ratios_raw": raw_ratios,
        "ratio_cpu": statistics.median(cpu_ratios),
        "ratio_raw_cpu": statistics.median(cpu_raw),
    }
    # other presets against `llama` on our side and against create_completion, alternated;
    # with `attention`, the presets run on a second model that captures those layers (the
    # entropix preset then uses the attention metrics) while `llama` stays hook-free
    if presets:
        amodel = load(name, n_ctx=1024, n_threads=n_threads, verbose=verbose, seed=0,
                      attention=attention) if attention else model
        if attention:
            _ours_once(amodel, 8, 1, sampler=presets[0])  # warm-up
        per = {p: [] for p in ("llama", *presets)}
        cc = []
        for r in range(rounds):
            order = [*per, "create_completion"]
            if r % 2:
                order.reverse()
            for p in order:
                if p == "create_completion":
                    cc.append(_tps(_theirs_once(llm, n_tokens, 2000 + r)))
                else:
                    per[p].append(_tps(_ours_once(model if p == "llama" else amodel, n_tokens, 2000 + r,
                                                  sampler=p)))
        base = statistics.median(per["llama"])
        out["presets"] = {p: {"tps": statistics.median(v), "vs_llama": statistics.median(v) / base,
                              "vs_create_completion": statistics.median(a / b for a, b in zip(v, cc))}
                          for p, v in per.items()}
        out["presets_attention"] = attention
        log("  presets: " + ", ".join(f"{p} {d['vs_llama']:.3f}x llama, {d['vs_create_completion']:.3f}x "
                                      "create_completion" for p, d in out["presets"].items()))
        if attention:
            amodel.close()
    # real logits of this model for the kernel benchmark
    model.engine.clear()
    model.engine.eval_prompt(model.tokenize(BENCH_PROMPT))
    out["_logits"] = model.engine.logits().copy()
    del llm
    model.close()
    return out


def thread_check(path, n_tokens: int = 48, rounds: int = 3) -> dict:
    """Raw greedy decode, ms/token: our thread choice vs llama.cpp's default of 4 threads."""
    import numpy as np

    from ..engine import Engine, physical_cores

    chosen = physical_cores()
    engines = {n: Engine(path, n_ctx=512, n_threads=n) for n in sorted({chosen, 4})}
    toks = engines[chosen].tokenize(BENCH_PROMPT)
    per = {n: [] for n in engines}
    for r in range(rounds):
        for n, eng in (engines.items() if r % 2 == 0 else reversed(engines.items())):
            eng.clear()
            eng.eval_prompt(toks)
            t0 = time.perf_counter()
            for _ in range(n_tokens):
                eng.eval_token(int(np.argmax(eng.logits())))
            per[n].append((time.perf_counter() - t0) * 1000 / n_tokens)
    for eng in engines.values():
        eng.close()
    return {"physical_cores": chosen, "ms_per_token": {str(n): statistics.median(v) for n, v in per.items()}}


def run_bench(names, *, n_tokens=128, rounds=3, n_threads=None, kernels=True, verbose=False, progress=True,
              presets=(), attention=None, engine_opts=None, profile=False) -> dict:
    import llama_cpp

    def log(msg):
        if progress:
            print(msg, file=sys.stderr, flush=True)

    report = {"llama_cpp_python": llama_cpp.__version__, "models": [], "kernels": None, "threads": None,
              "profile": bool(profile)}
    biggest = None
    for i, name in enumerate(names):
        log(f"benchmarking {name} ...")
        res = bench_model(name, n_tokens=n_tokens, rounds=rounds, n_threads=n_threads, verbose=verbose, log=log,
                          presets=tuple(presets), attention=attention, engine_opts=engine_opts, profile=profile)
        if profile:
            report["models"].append(res)
            continue
        logits = res.pop("_logits")
        if biggest is None or logits.shape[0] > biggest[1].shape[0]:
            biggest = (name, logits)
        report["models"].append(res)
        if i == 0 and n_threads is None:
            log(f"threads: physical cores vs llama.cpp's default of 4 on {name} ...")
            report["threads"] = {"model": name, **thread_check(res["path"])}
    if kernels and biggest is not None:
        from numba import set_num_threads

        from .kernels import run_kernel_bench

        set_num_threads(1)
        log(f"timing kernels on real {biggest[0]} logits ({biggest[1].shape[0]} entries) ...")
        report["kernels"] = {"logits_from": biggest[0], **run_kernel_bench(biggest[1])}
    return report


def format_report(report: dict) -> str:
    lines = [f"llama-cpp-python {report['llama_cpp_python']}; generation tokens/s, first to last token, "
             "median of alternated rounds"]
    if report.get("profile"):
        from .profile import format_profile

        return "\n\n".join(format_profile(m) for m in report["models"])
    lines.append(f"{'model':<16}{'vocab':>8}{'threads':>8}{'tokens':>8}{'ours':>10}{'raw loop':>10}"
                 f"{'llama-cpp-py':>14}{'ours/raw':>10}{'ours/lcp':>10}{'e2e/lcp':>9}")
    for m in report["models"]:
        lines.append(
            f"{m['model']:<16}{m['n_vocab']:>8}{m['threads']:>8}{m['tokens']:>8}{m['ours_tps']:>10.1f}"
            f"{m['raw_tps']:>10.1f}{m['llama_cpp_python_tps']:>14.1f}{m['ratio_raw']:>10.3f}{m['ratio']:>10.3f}"
            f"{m['ratio_end_to_end']:>9.2f}"
        )
    lines.append("the same ratios in CPU time (robust to other jobs on the machine): " + "; ".join(
        f"{m['model']} ours/raw {m['ratio_raw_cpu']:.3f}, ours/lcp {m['ratio_cpu']:.3f}" for m in report["models"]))
    for m in report["models"]:
        e = m["engine"]
        lines.append(f"{m['model']}: repack {'on' if e['repack'] else 'off'}, -ub {e['n_ubatch']}, "
                     f"-fa {e['flash_attn']} ({e['reason']})")
    for m in report["models"]:
        if m.get("presets"):
            att = f", presets with attention on layers '{m['presets_attention']}'" if m.get("presets_attention") else ""
            lines.append(f"{m['model']}: tokens/s by preset (alternated{att}): " + ", ".join(
                f"{p} {d['tps']:.1f} ({d['vs_llama']:.3f}x llama, {d['vs_create_completion']:.3f}x create_completion)"
                for p, d in m["presets"].items()))
    t = report.get("threads")
    if t:
        ms = ", ".join(f"{n} threads {v:.2f} ms/token" for n, v in t["ms_per_token"].items())
        lines.append(f"raw decode on {t['model']} ({t['physical_cores']} physical cores): {ms}")
    if report.get("kernels"):
        from .kernels import format_kernel_bench

        k = dict(report["kernels"])
        lines.append("")
        lines.append(f"kernels on {k.pop('logits_from')} logits, one thread:")
        lines.append(format_kernel_bench(k))
    return "\n".join(lines)
