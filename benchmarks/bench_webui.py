"""The web chat page's costs: how fast it loads from a cold server, and whether a browser
rendering the reply (tokens as spans, tints, chart, tooltip handlers) slows the server.

    python benchmarks/bench_webui.py [MODEL] [--rounds N] [--tokens N]   (default smollm2-135m, 4, 128)

Page load: per round a fresh ``serve`` and a fresh browser; the page's Navigation Timing
(DOMContentLoaded, load) and the end of its first API answer (``/v1/models``), then a
reload in the same browser (warm). Tokens/s: one server and one browser; rounds alternate (ABBA)
between a plain streaming client while the browser shows about:blank (no page attached)
and the same request written by the page in that browser; the server's own decode rate (``timings.predicted_per_second``) and the client's
tokens over wall time, with the ratio page / plain per round, and the CPU time all of
Chromium's processes used while the page wrote (a browser costs the server only through
the cores they share). One llama.cpp thread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _webui import Serve, browser, process_tree_cpu_s, send_in_page  # noqa: E402

PROMPT = "Write a long story about a lighthouse keeper who finds a message in a bottle."

NAV = """const n = performance.getEntriesByType('navigation')[0];
const m = performance.getEntriesByType('resource').find(r => r.name.endsWith('/v1/models'));
return {dcl: n.domContentLoadedEventEnd - n.startTime, load: n.loadEventEnd - n.startTime,
        models: m ? m.responseEnd : null};"""


def wait_loaded(d, model: str) -> dict:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(d, 60, poll_frequency=0.02).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
        and d.execute_script("return document.getElementById('model-info').textContent") == model
        and d.execute_script("return performance.getEntriesByType('navigation')[0].loadEventEnd") > 0)
    return d.execute_script(NAV)


def page_load(model: str, rounds: int) -> list[dict]:
    out = []
    for i in range(rounds):
        with Serve(model) as s:
            d = browser()
            try:
                d.get(s.url + "/")
                cold = wait_loaded(d, model)
                d.refresh()
                warm = wait_loaded(d, model)
            finally:
                d.quit()
        out.append({"ready_s": s.ready_s, "cold": cold, "warm": warm})
        print(f"  round {i + 1}: server ready in {s.ready_s:.1f} s; cold DOMContentLoaded {cold['dcl']:.0f} ms, "
              f"load {cold['load']:.0f} ms, /v1/models answered {cold['models']:.0f} ms; warm load {warm['load']:.0f} ms",
              flush=True)
    return out


def throughput(model: str, rounds: int, n_tokens: int) -> list[dict]:
    fields = {"sampler": "greedy", "seed": 1, "max_tokens": n_tokens, "top_logprobs": 5}
    body = {"messages": [{"role": "user", "content": PROMPT}], "logprobs": True, **fields}
    out = []
    with Serve(model) as s:
        s.stream({**body, "max_tokens": 8})  # warm the kernels
        order = []
        for r in range(rounds):
            order += ["plain", "page"] if r % 2 == 0 else ["page", "plain"]
        d = browser()  # started once, idle on about:blank when no page is attached
        try:
            time.sleep(2.0)
            for side in order:
                if side == "plain":
                    d.get("about:blank")
                    time.sleep(1.0)
                    res = s.stream(body)
                else:
                    d.get(s.url + "/")
                    wait_loaded(d, model)
                    d.execute_script("document.getElementById('new-chat').click()")
                    time.sleep(1.0)
                    c0 = process_tree_cpu_s(d.service.process.pid)
                    res = send_in_page(d, PROMPT, fields)
                    res["browser_cpu_s"] = process_tree_cpu_s(d.service.process.pid) - c0
                res["side"] = side
                res["server_tps"] = res["timings"]["predicted_per_second"]
                res["client_tps"] = res["tokens"] / res["wall_s"]
                out.append(res)
                cpu = f", browser CPU {res['browser_cpu_s']:.2f} s" if "browser_cpu_s" in res else ""
                print(f"  {side:5s}: {res['tokens']} tokens, server {res['server_tps']:.1f} tokens/s, "
                      f"client {res['client_tps']:.1f} tokens/s{cpu}", flush=True)
        finally:
            d.quit()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", default="smollm2-135m")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=128)
    a = ap.parse_args()

    print(f"page load from a cold server ({a.model}, one thread):")
    loads = page_load(a.model, max(1, a.rounds - 1))
    med = lambda xs: statistics.median(xs)  # noqa: E731
    print(f"median: cold DOMContentLoaded {med([x['cold']['dcl'] for x in loads]):.0f} ms, "
          f"load {med([x['cold']['load'] for x in loads]):.0f} ms, first API answer "
          f"{med([x['cold']['models'] for x in loads]):.0f} ms; warm load {med([x['warm']['load'] for x in loads]):.0f} ms")

    print(f"\nserver tokens/s, plain client vs the page in Chromium ({a.tokens} tokens, greedy, ABBA):")
    runs = throughput(a.model, a.rounds, a.tokens)
    plain = [r for r in runs if r["side"] == "plain"]
    page = [r for r in runs if r["side"] == "page"]
    ratios_s = [p["server_tps"] / q["server_tps"] for p, q in zip(page, plain)]
    ratios_c = [p["client_tps"] / q["client_tps"] for p, q in zip(page, plain)]
    print(f"{'':14s}{'plain':>10s}{'page':>10s}{'page/plain':>12s}")
    print(f"{'server tok/s':14s}{med([r['server_tps'] for r in plain]):10.1f}{med([r['server_tps'] for r in page]):10.1f}"
          f"{med(ratios_s):12.3f}")
    print(f"{'client tok/s':14s}{med([r['client_tps'] for r in plain]):10.1f}{med([r['client_tps'] for r in page]):10.1f}"
          f"{med(ratios_c):12.3f}")
    print(f"per-round server ratios: {', '.join(f'{x:.3f}' for x in ratios_s)}")
    cpu = med([r["browser_cpu_s"] for r in page])
    print(f"Chromium's CPU while the page wrote a reply: {cpu:.2f} s "
          f"({1000 * cpu / med([r['tokens'] for r in page]):.1f} ms per token, all its processes, polling included)")


if __name__ == "__main__":
    main()
