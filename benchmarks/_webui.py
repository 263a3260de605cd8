"""What the web-chat benchmarks share: an ``entropic-local serve`` subprocess on a free
port of 127.0.0.1 and a headless Chromium driven by Selenium (Debian's ``chromium`` and
``chromium-driver``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    """``entropic-local serve MODEL`` on one thread; ``ready_s``: start to the first 200 of /health."""

    def __init__(self, model: str = "smollm2-135m", threads: int = 1, args: tuple[str, ...] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "ENTROPIC_LOCAL_THREADS": str(threads),
               "OPENBLAS_NUM_THREADS": "1"}
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "entropic_local.cli", "serve", model, "--host", "127.0.0.1",
             "--port", str(self.port), "-t", str(threads), *args],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"serve exited: {self.proc.stderr.read().decode(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.ready_s = time.perf_counter() - t0

    def stream(self, body: dict) -> dict:
        """One streamed chat completion read to the end as a plain client does; returns
        the final chunk's ``timings``, the token count and the wall time."""
        req = urllib.request.Request(self.url + "/v1/chat/completions",
                                     data=json.dumps({**body, "stream": True}).encode(),
                                     headers={"Content-Type": "application/json"})
        t0 = time.perf_counter()
        timings, n = None, 0
        with urllib.request.urlopen(req, timeout=600) as r:
            for line in r:
                if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                for ch in chunk.get("choices", []):
                    n += len((ch.get("logprobs") or {}).get("content") or [])
                timings = chunk.get("timings") or timings
        return {"timings": timings, "tokens": n, "wall_s": time.perf_counter() - t0}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def process_tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of process ``root`` and all its descendants (Linux /proc)."""
    tck = os.sysconf("SC_CLK_TCK")
    stats, children = {}, {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(p)] = (int(f[11]) + int(f[12])) / tck
        children.setdefault(int(f[1]), []).append(int(p))
    total, stack = 0.0, [root]
    while stack:
        p = stack.pop()
        total += stats.get(p, 0.0)
        stack += children.get(p, [])
    return total


def browser(width: int = 1400, height: int = 1000, scale: float = 1.0):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        raise SystemExit("needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
              f"--window-size={width},{height}", f"--force-device-scale-factor={scale}", "--hide-scrollbars"):
        opts.add_argument(a)
    return webdriver.Chrome(options=opts, service=Service(driver))


def send_in_page(d, text: str, fields: dict, timeout: float = 600) -> dict:
    """Type ``text`` in the page with the settings ``fields``, send, wait for the end; the
    stored reply (with the server's ``timings``) and the wall time in the page."""
    from selenium.webdriver.common.by import By

    for k, v in fields.items():
        e = d.find_element(By.ID, k)
        e.clear()
        e.send_keys(str(v))
    box = d.find_element(By.ID, "prompt")
    box.clear()
    box.send_keys(text)
    d.set_script_timeout(timeout)
    t0 = time.perf_counter()
    d.find_element(By.ID, "send").click()
    # one WebDriver call that returns when the reply ends (no polling: its commands would
    # cost the browser CPU too)
    d.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const idle = () => document.getElementById('stop').disabled && !document.querySelector('.msg.streaming');
        if (idle()) return done();
        new MutationObserver((_, obs) => { if (idle()) { obs.disconnect(); done(); } })
            .observe(document.body, {subtree: true, attributes: true, attributeFilter: ['disabled', 'class']});""")
    wall = time.perf_counter() - t0
    convs = d.execute_script("return JSON.parse(localStorage.getItem('entropic-local.conversations'))")
    cur = d.execute_script("return localStorage.getItem('entropic-local.current')")
    conv = next(c for c in convs if c["id"] == cur)
    m = conv["messages"][-1]
    return {"timings": m.get("timings"), "tokens": len(m.get("logprobs") or []), "wall_s": wall}
