"""The README's picture of the web chat: a reply tinted by entropy, its chart, its
guessing spans and one token's tooltip, written by SmolLM2 through ``serve``.

    python benchmarks/webui_screenshot.py [OUT]        (default docs/webui.png)
"""

from __future__ import annotations

import argparse

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _webui import ROOT, Serve, browser, send_in_page  # noqa: E402

PROMPT = "Give me three unusual names for a pet octopus, and say why."
FIELDS = {"sampler": "llama", "seed": 11, "max_tokens": 90, "top_logprobs": 5}


def main() -> None:
    ap = argparse.ArgumentParser(description="A screenshot of the chat page with a coloured reply.")
    ap.add_argument("out", nargs="?", type=Path, default=ROOT / "docs" / "webui.png")
    out = ap.parse_args().out
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    with Serve("smollm2-135m") as s:
        d = browser(1280, 940)
        try:
            d.get(s.url + "/")
            d.execute_script("localStorage.clear()")
            d.get(s.url + "/")
            time.sleep(1.0)
            d.find_element(By.ID, "system-box").click()
            d.find_element(By.ID, "system").send_keys("You are a helpful assistant.")
            send_in_page(d, PROMPT, FIELDS)
            d.execute_script("window.scrollTo(0, 0)")
            # show the tooltip of the most uncertain token of the first lines (room below it)
            toks = d.find_elements(By.CSS_SELECTOR, ".msg.assistant .tok")
            first = toks[0].rect["y"]
            near = [j for j, t in enumerate(toks) if t.rect["y"] < first + 60] or [0]
            i = max(near, key=lambda j: float(toks[j].get_attribute("data-entropy") or 0))
            ActionChains(d).move_to_element(toks[i]).perform()
            time.sleep(0.3)
            out.parent.mkdir(parents=True, exist_ok=True)
            d.save_screenshot(str(out))
        finally:
            d.quit()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
