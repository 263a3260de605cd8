"""The server and the batch scheduler against their limits, side by side in one run.

    python benchmarks/bench_server.py                 # both models, 3 rounds
    python benchmarks/bench_server.py --smoke         # a quick check that everything runs

For each model, every round runs, in turn (so all see the same machine noise):

1. **llama.cpp's batched-decode ceiling**: one ``llama_decode`` of N one-token sequences
   against N = 1 (a fixed token, no sampling), on the same multi-sequence context the
   scheduler uses: ``ceiling = tok/s(N) / tok/s(1)``.
2. **The batch path** (``Model.generate_batch``: the scheduler, the ``llama`` chain with
   end-of-generation banned): ``parallel=N`` against ``parallel=1`` over the same prompts:
   ``batch ratio / ceiling``.
3. **The server** (``entropic-local serve --parallel N``, one thread) with C concurrent
   streaming clients for C in 1, 4, N, 16: aggregate tok/s, p50/p99 time to first token,
   p50/p99 inter-token latency; ``server(N clients) / server(1 client) / ceiling``.
4. **llama-cpp-python's own server** (``python -m llama_cpp.server``, same model file,
   same threads, ``--interrupt_requests False`` so each request completes instead of
   being cut off by the next) with N clients: aggregate tok/s and time to first token.

Every request makes exactly ``--tokens`` tokens (end-of-generation banned through
``logit_bias``, which both servers take). Figures are medians over rounds; ratios are
medians of per-round ratios. The llama_cpp.server side needs its extra's packages
(``fastapi``, ``starlette-context``, ``pydantic-settings``, ``sse-starlette``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

import httpx

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

PROMPTS = [f"{frame} {topic}" for frame in ("Write a short story about", "Here are some facts about",
                                            "An essay on", "A poem about")
           for topic in ("the ocean", "a lighthouse keeper", "volcanoes", "a chess match")]


# ----------------------------------------------------------------------------- in process

def ceiling_and_batch(name: str, n: int, tokens: int, n_threads: int, log) -> dict:
    import entropic_local as el

    m = el.load(name, n_ctx=512, n_threads=n_threads, seed=0)
    eog = sorted(m.engine.eog_tokens)
    spec = "logit_bias:" + ",".join(f"{t}=-inf" for t in eog) + ",llama" if eog else "llama"
    spec = spec.replace(",llama", ",top_k=40,top_p=0.95,min_p=0.05,temp=0.8")
    prompts = (PROMPTS * 4)[: 2 * n]
    eng = m.batch_engine(n, 512 * n)

    def ceiling(k: int, steps: int = 32) -> float:
        for s in range(k):
            eng.seq_remove(s)
        eng.decode_entries([(100 + s, 0, s, True) for s in range(k)])  # warm
        t0 = time.perf_counter()
        for j in range(1, steps + 1):
            if eng.decode_entries([(100 + s, j, s, True) for s in range(k)]) != 0:
                raise RuntimeError("decode failed")
        dt = time.perf_counter() - t0
        for s in range(k):
            eng.seq_remove(s)
        return k * steps / dt

    def batch(p: int) -> float:
        t0 = time.perf_counter()
        gens = m.generate_batch(prompts, max_tokens=tokens, sampler=spec, seeds=list(range(len(prompts))),
                                parallel=p)
        return sum(len(g.token_ids) for g in gens) / (time.perf_counter() - t0)

    m.generate_batch(prompts[:2], max_tokens=2, sampler=spec, parallel=2)  # compile the kernels
    out = {"c1": ceiling(1), "cn": ceiling(n), "b1": batch(1), "bn": batch(n)}
    m.close()
    log(f"  {name}: ceiling 1 -> {n}: {out['c1']:.1f} -> {out['cn']:.1f} tok/s; batch parallel 1 -> {n}: "
        f"{out['b1']:.1f} -> {out['bn']:.1f} tok/s")
    return out


# ----------------------------------------------------------------------------- servers

def start(cmd: list[str], ready_url: str | None = None, env=None, timeout=300) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, **(env or {})})
    if ready_url is None:  # ours prints its URL
        line = p.stdout.readline()
        m = re.search(r"(http://\S+)/v1", line)
        if not m:
            p.kill()
            raise RuntimeError(f"the server did not start: {line} {p.stderr.read()}")
        return p, m.group(1)
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            if httpx.get(ready_url + "/v1/models", timeout=2).status_code == 200:
                return p, ready_url
        except httpx.HTTPError:
            pass
        if p.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited: {p.stderr.read()[-2000:]}")
        time.sleep(0.5)
    p.kill()
    raise RuntimeError("llama_cpp.server did not come up")


async def one_stream(client: httpx.AsyncClient, base: str, prompt: str, tokens: int, bias: dict) -> dict:
    body = {"prompt": prompt, "max_tokens": tokens, "stream": True, "logit_bias": bias, "temperature": 0.8,
            "top_k": 40, "top_p": 0.95, "min_p": 0.05, "seed": 1}
    t0 = time.perf_counter()
    stamps, n, reason = [], 0, None
    async with client.stream("POST", base + "/v1/completions", json=body, timeout=600) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            obj = json.loads(data)
            if not obj.get("choices"):
                continue
            ch = obj["choices"][0]
            if ch.get("finish_reason"):
                reason = ch["finish_reason"]
                if not ch.get("text"):
                    continue
            stamps.append(time.perf_counter() - t0)
            n += 1
    return {"stamps": stamps, "chunks": n, "reason": reason, "s": time.perf_counter() - t0}


async def load_test(base: str, clients: int, tokens: int, bias: dict) -> dict:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64)) as client:
        t0 = time.perf_counter()
        res = await asyncio.gather(*(one_stream(client, base, PROMPTS[i % len(PROMPTS)], tokens, bias)
                                     for i in range(clients)))
        wall = time.perf_counter() - t0
    n_tok = sum(tokens if r["reason"] == "length" else r["chunks"] for r in res)
    ttft = sorted(r["stamps"][0] for r in res if r["stamps"])
    itl = sorted(b - a for r in res for a, b in zip(r["stamps"], r["stamps"][1:]))
    return {"tps": n_tok / wall, "ttft": ttft, "itl": itl}


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def eos_bias(name: str, n_threads: int) -> dict:
    """A logit_bias banning the model's end-of-generation tokens (both servers take it)."""
    import entropic_local as el

    m = el.load(name, n_ctx=64, n_threads=n_threads)
    toks = sorted(m.engine.eog_tokens)
    m.close()
    return {str(t): -100 for t in toks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="smollm2-135m,gemma3-270m")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clients", default="1,4,8,16", help="client counts for our server")
    ap.add_argument("--no-llama-server", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="1 round, 8 tokens, 1 and 2 clients")
    ap.add_argument("--json", dest="json_out", default=None, help="write every figure here")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers it started
    if a.smoke:
        a.rounds, a.tokens, a.clients, a.parallel = 1, 8, "1,2", 2
    clients = [int(c) for c in a.clients.split(",")]

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    from entropic_local.registry import resolve_model

    env = {"PYTHONPATH": ROOT, "ENTROPIC_LOCAL_THREADS": str(a.threads), "OPENBLAS_NUM_THREADS": "1"}
    report = []
    for name in a.models.split(","):
        path = str(resolve_model(name))
        ours, ours_url = start([sys.executable, "-m", "entropic_local", "serve", name, "--port", "0", "-t",
                                str(a.threads), "--parallel", str(max(a.parallel, max(clients))), "--n-ctx", "512"],
                               env=env)
        llama = None
        if not a.no_llama_server:
            port = 18000 + os.getpid() % 1000
            llama, llama_url = start([sys.executable, "-m", "llama_cpp.server", "--model", path, "--n_threads",
                                      str(a.threads), "--n_threads_batch", str(a.threads), "--n_ctx", "2048",
                                      "--port", str(port), "--interrupt_requests", "False", "--verbose", "False"],
                                     ready_url=f"http://127.0.0.1:{port}", env=env)
        try:
            bias = eos_bias(name, a.threads)
            asyncio.run(load_test(ours_url, 2, 4, bias))  # warm both
            if llama is not None:
                asyncio.run(load_test(llama_url, 1, 4, bias))
            rounds = []
            for r in range(a.rounds):
                row = {"inproc": ceiling_and_batch(name, a.parallel, a.tokens, a.threads, log), "ours": {}}
                for c in clients:
                    row["ours"][c] = asyncio.run(load_test(ours_url, c, a.tokens, bias))
                    log(f"  {name} round {r + 1}: ours, {c} clients: {row['ours'][c]['tps']:.1f} tok/s")
                if llama is not None:
                    row["llama"] = asyncio.run(load_test(llama_url, a.parallel, a.tokens, bias))
                    log(f"  {name} round {r + 1}: llama_cpp.server, {a.parallel} clients: "
                        f"{row['llama']['tps']:.1f} tok/s")
                rounds.append(row)
        finally:
            for p in (ours, llama):
                if p is not None:
                    p.terminate()
                    p.wait(60)
        report.append(summarise(name, rounds, a, clients))
    print(format_report(report, a))
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(report, f, indent=1)


def summarise(name: str, rounds: list[dict], a, clients: list[int]) -> dict:
    med = statistics.median
    n = a.parallel
    ceil = [r["inproc"]["cn"] / r["inproc"]["c1"] for r in rounds]
    batch = [r["inproc"]["bn"] / r["inproc"]["b1"] for r in rounds]
    out = {"model": name, "parallel": n, "tokens": a.tokens, "threads": a.threads, "rounds": len(rounds),
           "ceiling": med(ceil), "batch_ratio": med(batch),
           "batch_vs_ceiling": med(b / c for b, c in zip(batch, ceil)), "ours": {}}
    for c in clients:
        runs = [r["ours"][c] for r in rounds]
        out["ours"][c] = {"tps": med(x["tps"] for x in runs),
                          "ttft_p50": med(pct(x["ttft"], .5) for x in runs),
                          "ttft_p99": med(pct(x["ttft"], .99) for x in runs),
                          "itl_p50": med(pct(x["itl"], .5) for x in runs),
                          "itl_p99": med(pct(x["itl"], .99) for x in runs)}
    if n in clients and 1 in clients:
        sr = [r["ours"][n]["tps"] / r["ours"][1]["tps"] for r in rounds]
        out["server_ratio"] = med(sr)
        out["server_vs_ceiling"] = med(s / c for s, c in zip(sr, ceil))
    if "llama" in rounds[0]:
        out["llama"] = {"tps": med(r["llama"]["tps"] for r in rounds),
                        "ttft_p50": med(pct(r["llama"]["ttft"], .5) for r in rounds),
                        "ttft_p99": med(pct(r["llama"]["ttft"], .99) for r in rounds)}
        if n in clients:
            out["vs_llama"] = med(r["ours"][n]["tps"] / r["llama"]["tps"] for r in rounds)
    return out


def format_report(report: list[dict], a) -> str:
    lines = [f"threads {a.threads}, {a.tokens} tokens per request, medians of {a.rounds} round(s)", ""]
    lines += ["| model | N | ceiling tok/s(N)/tok/s(1) | batch parallel N / 1 | batch / ceiling | "
              "server N clients / 1 | server / ceiling |", "|---|---|---|---|---|---|---|"]
    for r in report:
        lines.append(f"| {r['model']} | {r['parallel']} | {r['ceiling']:.2f} | {r['batch_ratio']:.2f} | "
                     f"{r['batch_vs_ceiling']:.2f} | {r.get('server_ratio', float('nan')):.2f} | "
                     f"{r.get('server_vs_ceiling', float('nan')):.2f} |")
    lines += ["", "| model | server | clients | aggregate tok/s | TTFT p50 / p99 ms | ITL p50 / p99 ms |",
              "|---|---|---|---|---|---|"]
    for r in report:
        for c, x in r["ours"].items():
            lines.append(f"| {r['model']} | entropic-local serve | {c} | {x['tps']:.1f} | "
                         f"{x['ttft_p50'] * 1e3:.0f} / {x['ttft_p99'] * 1e3:.0f} | "
                         f"{x['itl_p50'] * 1e3:.0f} / {x['itl_p99'] * 1e3:.0f} |")
        if "llama" in r:
            x = r["llama"]
            lines.append(f"| {r['model']} | llama_cpp.server | {r['parallel']} | {x['tps']:.1f} | "
                         f"{x['ttft_p50'] * 1e3:.0f} / {x['ttft_p99'] * 1e3:.0f} | |")
    lines.append("")
    for r in report:
        if "vs_llama" in r:
            lines.append(f"{r['model']}: entropic-local serve / llama_cpp.server at {r['parallel']} clients: "
                         f"{r['vs_llama']:.2f}x aggregate tokens/s")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
