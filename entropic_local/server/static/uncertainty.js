// How uncertain the model was at each token: the tint scale, its legend, the runs of
// high uncertainty, and the numbers a token's tooltip shows. Pure functions over the
// token records (see tokenRecord); the DOM they build holds model text as text nodes only.

// Entropy H = -Σ p log p over the full vocabulary at temperature 1 (nats); the chosen
// token's probability p = exp(logprob). Five levels each; level 0 is left untinted.
export const SCALES = {
  entropy: {
    label: "entropy (nats)",
    // upper bounds: a token whose entropy is below bounds[i] is at level i
    bounds: [0.5, 1.0, 2.0, 3.0, Infinity],
    names: ["< 0.5", "0.5–1", "1–2", "2–3", "≥ 3"],
    value: (r) => r.entropy,
  },
  logprob: {
    label: "probability of the chosen token",
    // lower bounds on p: p ≥ bounds[i] is level i
    bounds: [0.9, 0.7, 0.4, 0.15, 0],
    names: ["≥ 0.9", "0.7–0.9", "0.4–0.7", "0.15–0.4", "< 0.15"],
    value: (r) => r.logprob,
  },
};
export const LEVELS = 5;
export const HIGH_LEVEL = 4; // a token at this level or above is "high uncertainty" (≥ 3 nats; p < 0.15)

const STANDARD = new Set(["token", "logprob", "bytes", "top_logprobs", "entropy", "varentropy"]);

const num = (x) => (typeof x === "number" && Number.isFinite(x) ? x : null);

// One token of a reply as the page keeps it: the API's logprobs.content[] entry, its
// extra keys (sampler decisions, attention metrics) gathered in `info`.
export function tokenRecord(entry, text) {
  const info = {};
  for (const [k, v] of Object.entries(entry)) {
    if (STANDARD.has(k) || v === null || v === undefined) continue;
    if (typeof v === "object" && !Array.isArray(v)) {
      for (const [k2, v2] of Object.entries(v)) if (v2 !== null && typeof v2 !== "object") info[k2] = v2;
    } else if (typeof v !== "object") {
      info[k] = v;
    }
  }
  return {
    text,
    token: typeof entry.token === "string" ? entry.token : "",
    logprob: num(entry.logprob),
    entropy: num(entry.entropy),
    varentropy: num(entry.varentropy),
    top: Array.isArray(entry.top_logprobs)
      ? entry.top_logprobs.filter((t) => t && typeof t.token === "string").map((t) => ({ token: t.token, logprob: num(t.logprob) }))
      : [],
    info,
  };
}

// The level (0..LEVELS-1) of a token on a scale, or null when the value is unknown.
export function level(record, mode) {
  const scale = SCALES[mode];
  if (!scale) return null;
  const v = scale.value(record);
  if (v === null || v === undefined) return null;
  if (mode === "entropy") {
    for (let i = 0; i < LEVELS; i++) if (v < scale.bounds[i]) return i;
    return LEVELS - 1;
  }
  const p = Math.exp(v);
  for (let i = 0; i < LEVELS; i++) if (p >= scale.bounds[i]) return i;
  return LEVELS - 1;
}

// Runs of high-uncertainty tokens as [start, end) index pairs: tokens at HIGH_LEVEL or
// above, runs closer than `gap` calm tokens merged (a word split into pieces stays one run).
export function highSpans(records, mode, gap = 1) {
  const spans = [];
  let start = -1, last = -1;
  records.forEach((r, i) => {
    const lv = level(r, mode);
    if (lv === null || lv < HIGH_LEVEL) return;
    if (start >= 0 && i - last - 1 <= gap) { last = i; return; }
    if (start >= 0) spans.push([start, last + 1]);
    start = i; last = i;
  });
  if (start >= 0) spans.push([start, last + 1]);
  return spans;
}

// A token's text shown unambiguously (spaces and line breaks visible).
export function showToken(s) {
  return s.replace(/[\u0000-\u001f\u007f-\u009f ]/g, (c) => {
    if (c === " ") return "␣";
    if (c === "\n") return "\\n";
    if (c === "\t") return "\\t";
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
  });
}

export const fmt = (x, digits = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));
export const pct = (logprob) => (logprob === null ? "–" : `${(100 * Math.exp(logprob)).toFixed(1)}%`);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// Sampler decisions worth naming first; anything else the server sent follows.
const INFO_ORDER = ["action", "quadrant", "temperature", "alpha", "support", "beta", "free_energy", "kept_entropy", "top_k", "top_p", "min_p"];
const INFO_LABEL = { temperature: "temperature", alpha: "α", beta: "β", free_energy: "free energy", kept_entropy: "kept entropy" };

// The tooltip's content for one token: a definition list and a table of alternatives.
export function tooltipContent(record) {
  const frag = document.createDocumentFragment();
  frag.append(el("div", "tip-token", showToken(record.token || record.text)));
  const dl = el("dl");
  const row = (name, value, key) => {
    const dt = el("dt", null, name);
    const dd = el("dd", null, value);
    if (key) dd.dataset.key = key;
    dl.append(dt, dd);
  };
  row("logprob", fmt(record.logprob), "logprob");
  row("probability", pct(record.logprob), "probability");
  row("entropy", `${fmt(record.entropy)} nats`, "entropy");
  row("varentropy", `${fmt(record.varentropy)} nats²`, "varentropy");
  const keys = Object.keys(record.info);
  keys.sort((a, b) => {
    const ia = INFO_ORDER.indexOf(a), ib = INFO_ORDER.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });
  for (const k of keys) {
    const v = record.info[k];
    row(INFO_LABEL[k] || k.replace(/_/g, " "), typeof v === "number" && !Number.isInteger(v) ? fmt(v) : String(v), k);
  }
  frag.append(dl);
  if (record.top.length) {
    const table = el("table", "tip-top");
    const cap = el("caption", null, "top alternatives");
    table.append(cap);
    for (const t of record.top) {
      const tr = el("tr");
      if (t.token === record.token) tr.className = "chosen";
      const bar = el("td", "bar");
      const fill = el("span");
      fill.style.width = `${t.logprob === null ? 0 : Math.round(100 * Math.exp(t.logprob))}%`;
      bar.append(fill);
      tr.append(el("td", "alt", showToken(t.token)), el("td", "p", pct(t.logprob)), bar);
      table.append(tr);
    }
    frag.append(table);
    if (!record.top.some((t) => t.token === record.token)) {
      frag.append(el("div", "tip-note", `the chosen token is not among the top ${record.top.length}`));
    }
  }
  return frag;
}

// The legend of a scale: each level's swatch with its range in numbers.
export function legend(mode) {
  const scale = SCALES[mode];
  const wrap = el("div", "legend-scale");
  wrap.append(el("span", "legend-label", scale.label));
  const list = el("ol", "legend-levels");
  scale.names.forEach((name, i) => {
    const li = el("li", `lv${i}`);
    li.append(el("span", "swatch"), el("span", "range", name));
    if (i >= HIGH_LEVEL) li.title = "high uncertainty";
    list.append(li);
  });
  wrap.append(list);
  return wrap;
}
