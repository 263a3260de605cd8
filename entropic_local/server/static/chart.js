// A small chart of one reply's entropy over its tokens (SVG): one bar per token, coloured
// by the token's level on the page's current scale, with the high-uncertainty line.
// Clicking a bar (or pressing Enter on the focused chart) focuses that token.

import { SCALES, HIGH_LEVEL, level, fmt } from "./uncertainty.js";

const NS = "http://www.w3.org/2000/svg";
const W = 600, H = 64, PAD = 2;
// While a reply streams the chart is redrawn at most this often (ms): an SVG repaint per
// token would cost the machine more than the text does.
export const REDRAW_MS = 500;

function svgEl(tag, attrs = {}) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

export class EntropyChart {
  constructor(container, { onPick = null } = {}) {
    this.svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", class: "chart", role: "img", focusable: "false" });
    this.title = svgEl("title");
    this.svg.append(this.title);
    this.bars = svgEl("g");
    this.line = svgEl("line", { class: "chart-high", x1: 0, x2: W });
    this.svg.append(this.bars, this.line);
    container.append(this.svg);
    this.records = [];
    this.mode = "entropy";
    this.last = -Infinity;  // when it was last drawn (performance.now())
    this.timer = null;
    this.onPick = onPick;
    this.svg.addEventListener("click", (e) => {
      if (!this.onPick || !this.records.length) return;
      const r = this.svg.getBoundingClientRect();
      const i = Math.floor(((e.clientX - r.left) / r.width) * this.records.length);
      this.onPick(Math.max(0, Math.min(this.records.length - 1, i)));
    });
  }

  // Redraw for the reply's token records, at most every REDRAW_MS unless `now` (the
  // final draw of a reply); bar height is entropy (nats) on a scale of at least 4 nats,
  // the dashed line at the entropy scale's high-uncertainty bound.
  update(records, mode, now = false) {
    this.records = records;
    this.mode = mode;
    const wait = this.last + REDRAW_MS - performance.now();
    if (!now && wait > 0) {
      if (this.timer === null) this.timer = setTimeout(() => { this.timer = null; this.draw(); }, wait);
      return;
    }
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
    this.draw();
  }

  draw() {
    const records = this.records, mode = this.mode;
    this.last = performance.now();
    const hs = records.map((r) => (r.entropy === null ? 0 : r.entropy));
    const top = Math.max(4, ...hs);
    const n = Math.max(records.length, 1);
    const bw = (W - 2 * PAD) / n;
    // one path per level: a few elements however long the reply
    const paths = new Map();
    records.forEach((r, i) => {
      const lv = level(r, mode) ?? 0;
      const h = (hs[i] / top) * (H - 2 * PAD);
      const x = PAD + i * bw;
      const d = `M${x.toFixed(2)} ${(H - PAD).toFixed(2)}h${Math.max(bw - (bw > 3 ? 1 : 0), 0.5).toFixed(2)}v${(-h).toFixed(2)}h${(-Math.max(bw - (bw > 3 ? 1 : 0), 0.5)).toFixed(2)}z`;
      paths.set(lv, (paths.get(lv) || "") + d);
    });
    this.bars.replaceChildren();
    for (const [lv, d] of [...paths.entries()].sort((a, b) => a[0] - b[0])) {
      this.bars.append(svgEl("path", { d, class: `bar lv${lv}` }));
    }
    const hi = SCALES.entropy.bounds[HIGH_LEVEL - 1];
    const y = H - PAD - (hi / top) * (H - 2 * PAD);
    this.line.setAttribute("y1", y.toFixed(2));
    this.line.setAttribute("y2", y.toFixed(2));
    const valid = records.filter((r) => r.entropy !== null);
    const mean = valid.length ? valid.reduce((s, r) => s + r.entropy, 0) / valid.length : null;
    const max = valid.length ? Math.max(...valid.map((r) => r.entropy)) : null;
    this.title.textContent = `Entropy over ${records.length} tokens: mean ${fmt(mean, 2)}, max ${fmt(max, 2)} nats; dashed line at ${hi} nats`;
    this.svg.setAttribute("aria-label", this.title.textContent);
  }
}
