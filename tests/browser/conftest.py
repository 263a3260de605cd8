"""The browser harness: a real ``entropic-local serve`` on 127.0.0.1 (a free port, one
thread, SmolLM2) and one headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by Selenium) per test module, plus ``Page``, the chat page as the tests use it.

A module may set ``SERVE_ARGS`` (extra ``serve`` arguments, e.g. ``["--api-key", "k"]``).
Every wait is bounded; a server that does not come up fails the module with its output.
"""

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
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
MODEL = "smollm2-135m"
START_TIMEOUT = 180.0   # model load on a loaded machine
REPLY_TIMEOUT = 120.0   # one short reply at one thread

if not (CHROMIUM and DRIVER):
    pytest.skip("needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)",
                allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A ``serve`` subprocess and plain HTTP calls to it."""

    def __init__(self, args: list[str], api_key: str | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = api_key
        env = {**os.environ, "PYTHONPATH": str(ROOT), "ENTROPIC_LOCAL_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "entropic_local.cli", "serve", MODEL, "--host", "127.0.0.1",
               "--port", str(self.port), "-t", "1", *args]
        self.log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"webui-serve-{self.port}.log", "w+")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"serve did not answer /health in {START_TIMEOUT:.0f} s:\n{self.output()}")
            time.sleep(0.3)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-4000:]

    def request(self, path: str, body: Any = None, *, key: str | None = "default") -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method="POST" if data else "GET")
        if data:
            req.add_header("Content-Type", "application/json")
        key = self.api_key if key == "default" else key
        if key:
            req.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(req, timeout=REPLY_TIMEOUT) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


def make_browser(download_dir: Path):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        opts.add_argument(a)
    opts.add_experimental_option("prefs", {
        "download.default_directory": str(download_dir), "download.prompt_for_download": False})
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(DRIVER))


class Page:
    """The chat page in the browser, as a user drives it (and what a test reads back)."""

    def __init__(self, driver, server: Server, download_dir: Path):
        self.d = driver
        self.server = server
        self.downloads = download_dir

    # -- navigation
    def open(self, fresh: bool = True) -> "Page":
        self.d.get(self.server.url + "/")
        if fresh:
            self.d.execute_script("localStorage.clear()")
            self.d.get(self.server.url + "/")
        self.wait(lambda d: self.js("return document.getElementById('model-info').textContent") != "connecting…",
                  "the model info")
        return self

    def js(self, script: str, *args):
        return self.d.execute_script(script, *args)

    def wait(self, cond, what: str, timeout: float = REPLY_TIMEOUT):
        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.1).until(cond)
        except TimeoutException:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; status: "
                                 f"{self.status()!r}; server:\n{self.server.output()}") from None

    def el(self, css: str):
        return self.d.find_element(By.CSS_SELECTOR, css)

    def els(self, css: str):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def status(self) -> str:
        try:
            return self.el("#status").text
        except Exception:  # noqa: BLE001 - only for messages
            return ""

    # -- settings
    def set_field(self, field_id: str, value: Any) -> None:
        e = self.el(f"#{field_id}")
        e.clear()
        if value not in (None, ""):
            e.send_keys(str(value))

    def settings(self, **fields: Any) -> None:
        for k, v in fields.items():
            self.set_field({"stop": "stop-strings"}.get(k, k), v)

    # -- chatting
    def type_message(self, text: str) -> None:
        box = self.el("#prompt")
        box.clear()
        box.send_keys(text)

    def send(self, text: str, wait: bool = True) -> None:
        self.type_message(text)
        self.el("#send").click()
        if wait:
            self.wait_idle()

    def wait_idle(self, timeout: float = REPLY_TIMEOUT) -> None:
        self.wait(lambda d: self.el("#stop").get_property("disabled") is True
                  and not self.els(".msg.streaming"), "the reply to end", timeout)

    def replies(self):
        return self.els(".msg.assistant")

    def tokens(self, reply_index: int = -1) -> list[dict[str, Any]]:
        """The token spans of a reply: text and the numbers the page holds for each."""
        return self.js("""
            const rs = document.querySelectorAll('.msg.assistant');
            const r = rs[arguments[0] < 0 ? rs.length + arguments[0] : arguments[0]];
            return Array.from(r.querySelectorAll('.tok')).map(s => ({
                text: s.textContent,
                entropy: s.dataset.entropy === undefined ? null : Number(s.dataset.entropy),
                logprob: s.dataset.logprob === undefined ? null : Number(s.dataset.logprob),
                varentropy: s.dataset.varentropy === undefined ? null : Number(s.dataset.varentropy),
                cls: s.className}));""", reply_index)

    def reply_text(self, reply_index: int = -1) -> str:
        return self.js("""const rs = document.querySelectorAll('.msg.assistant .msg-text');
            return rs[arguments[0] < 0 ? rs.length + arguments[0] : arguments[0]].textContent;""", reply_index)

    def tooltip(self) -> dict[str, str]:
        """What the visible tooltip shows: its rows by key, and the alternatives."""
        self.wait(lambda d: not self.el("#tip").get_property("hidden"), "the tooltip", 10)
        return self.js("""
            const tip = document.getElementById('tip');
            const rows = {};
            tip.querySelectorAll('dd[data-key]').forEach(dd => rows[dd.dataset.key] = dd.textContent);
            rows.token = tip.querySelector('.tip-token').textContent;
            rows.alternatives = Array.from(tip.querySelectorAll('.tip-top tr')).map(
                tr => [tr.querySelector('.alt').textContent, tr.querySelector('.p').textContent]);
            rows.describes = document.activeElement && document.activeElement.getAttribute('aria-describedby');
            return rows;""")

    def hover(self, element) -> None:
        ActionChains(self.d).move_to_element(element).perform()

    def requests_sent(self, path: str = "/v1/chat/completions") -> list[dict[str, Any]]:
        """The JSON bodies the page POSTed to ``path`` since the last call (Chrome's network log)."""
        out = []
        for entry in self.d.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") != "Network.requestWillBeSent":
                continue
            req = msg["params"]["request"]
            if req.get("method") == "POST" and req.get("url", "").endswith(path) and req.get("postData"):
                out.append(json.loads(req["postData"]))
        return out


@pytest.fixture(scope="module")
def server(request):
    args = list(getattr(request.module, "SERVE_ARGS", []))
    key = args[args.index("--api-key") + 1] if "--api-key" in args else None
    s = Server(args, api_key=key)
    yield s
    s.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    downloads = tmp_path_factory.mktemp("downloads")
    d = make_browser(downloads)
    d.set_script_timeout(30)
    d.downloads = downloads
    yield d
    d.quit()


@pytest.fixture(scope="module")
def page(browser, server):
    return Page(browser, server, browser.downloads).open()
