// One assistant reply on the page: its tokens as focusable spans (text nodes only, never
// HTML from the model), tinted by level, high-uncertainty runs marked, and the tooltip
// that shows a token's numbers on hover, focus or tap.

import { tokenRecord, level, highSpans, tooltipContent, LEVELS } from "./uncertainty.js";

const LEVEL_CLASSES = Array.from({ length: LEVELS }, (_, i) => `lv${i}`);
// Tokens reach the page at most this often (ms): one layout and paint for several tokens,
// so a browser watching a fast stream costs the machine little.
export const FLUSH_MS = 200;

// The single floating tooltip of the page (role="tooltip"), described-by the token it shows.
export class Tooltip {
  constructor(el) {
    this.el = el;
    this.owner = null;
  }
  show(span, record) {
    this.el.replaceChildren(tooltipContent(record));
    this.el.hidden = false;
    this.owner = span;
    span.setAttribute("aria-describedby", this.el.id);
    const r = span.getBoundingClientRect();
    const tip = this.el.getBoundingClientRect();
    let left = r.left + window.scrollX;
    left = Math.max(4, Math.min(left, window.scrollX + document.documentElement.clientWidth - tip.width - 4));
    let top = r.bottom + window.scrollY + 6;
    if (r.bottom + tip.height + 6 > window.innerHeight && r.top - tip.height - 6 > 0) top = r.top + window.scrollY - tip.height - 6;
    this.el.style.left = `${left}px`;
    this.el.style.top = `${top}px`;
  }
  hide(span) {
    if (span && span !== this.owner) return;
    if (this.owner) this.owner.removeAttribute("aria-describedby");
    this.owner = null;
    this.el.hidden = true;
  }
}

export class ReplyView {
  // container: the element the tokens go in; spans: where the list of high-uncertainty
  // runs goes; onChange: called (at most every FLUSH_MS) after tokens arrive.
  constructor(container, { mode, tooltip, spansEl = null, onChange = null }) {
    this.container = container;
    this.mode = mode;
    this.tooltip = tooltip;
    this.spansEl = spansEl;
    this.onChange = onChange;
    this.entries = [];   // the API's logprobs.content[] entries, as received
    this.records = [];   // tokenRecord of each
    this.spans = [];     // the span element of each
    this.plain = "";     // text that came without logprobs
    this.decoder = new TextDecoder("utf-8");
    this.pending = null;                           // the timer of the next flush
    this.frag = document.createDocumentFragment(); // tokens not on the page yet
    container.addEventListener("keydown", (e) => this.onKey(e));
  }

  // Tokens with their logprob entries; the text of each is decoded from its UTF-8 bytes
  // (a character split over tokens shows on the token that completes it).
  addEntries(entries) {
    for (const entry of entries) {
      if (!entry || typeof entry !== "object") continue;
      let text;
      if (Array.isArray(entry.bytes)) text = this.decoder.decode(Uint8Array.from(entry.bytes), { stream: true });
      else text = typeof entry.token === "string" ? entry.token : "";
      const record = tokenRecord(entry, text);
      const i = this.records.length;
      const span = document.createElement("span");
      span.className = "tok";
      span.textContent = text;          // text, never markup
      span.tabIndex = i === 0 ? 0 : -1; // one tab stop per reply; arrow keys move inside it
      span.dataset.i = String(i);
      if (record.entropy !== null) span.dataset.entropy = String(record.entropy);
      if (record.logprob !== null) span.dataset.logprob = String(record.logprob);
      if (record.varentropy !== null) span.dataset.varentropy = String(record.varentropy);
      this.tint(span, record);
      span.addEventListener("mouseenter", () => this.tooltip.show(span, record));
      span.addEventListener("mouseleave", () => { if (document.activeElement !== span) this.tooltip.hide(span); });
      span.addEventListener("focus", () => this.tooltip.show(span, record));
      span.addEventListener("blur", () => this.tooltip.hide(span));
      this.entries.push(entry);
      this.records.push(record);
      this.spans.push(span);
      this.frag.append(span);
    }
    this.changed();
  }

  // Text without per-token data (the server sent no logprobs).
  addText(text) {
    if (!text) return;
    this.plain += text;
    this.frag.append(document.createTextNode(text));
    this.changed();
  }

  // The stream ended: flush a trailing partial character, and make the shown text agree
  // with the message's content (a stop string the server cut is not shown).
  finish(content) {
    this.flush();
    const rest = this.decoder.decode();
    if (rest && this.spans.length) this.spans[this.spans.length - 1].textContent += rest;
    if (typeof content === "string" && this.spans.length) {
      const shown = this.spans.map((s) => s.textContent).join("") + this.plain;
      if (shown !== content && shown.startsWith(content)) {
        let keep = content.length;
        for (const s of this.spans) {
          const t = s.textContent;
          if (keep >= t.length) { keep -= t.length; continue; }
          s.textContent = t.slice(0, keep);
          keep = 0;
        }
      } else if (content.startsWith(shown) && content.length > shown.length) {
        this.container.append(document.createTextNode(content.slice(shown.length)));
      }
    }
    this.render(true);
  }

  tint(span, record) {
    span.classList.remove(...LEVEL_CLASSES);
    const lv = level(record, this.mode);
    if (lv !== null) span.classList.add(LEVEL_CLASSES[lv]);
  }

  setMode(mode) {
    this.mode = mode;
    this.spans.forEach((s, i) => this.tint(s, this.records[i]));
    this.render(true);
  }

  changed() {
    if (this.pending === null) this.pending = setTimeout(() => this.flush(), FLUSH_MS);
  }

  // Put the tokens that arrived on the page, then mark and report.
  flush() {
    if (this.pending !== null) clearTimeout(this.pending);
    this.pending = null;
    if (!this.frag.firstChild) return;
    this.container.append(this.frag);
    this.render();
  }

  // Mark the high-uncertainty runs and list them (each a button that focuses its first
  // token); `final`: the reply is complete (or shown anew), not streaming.
  render(final = false) {
    for (const s of this.spans) s.classList.remove("hi", "hi-start", "hi-end");
    const runs = highSpans(this.records, this.mode);
    for (const [a, b] of runs) {
      for (let i = a; i < b; i++) this.spans[i].classList.add("hi");
      this.spans[a].classList.add("hi-start");
      this.spans[b - 1].classList.add("hi-end");
    }
    if (this.spansEl) {
      this.spansEl.replaceChildren();
      if (runs.length) {
        const label = document.createElement("span");
        label.textContent = `Guessing (${runs.length}): `;
        this.spansEl.append(label);
        for (const [a, b] of runs) {
          const btn = document.createElement("button");
          btn.type = "button";
          btn.className = "span-link";
          const text = this.spans.slice(a, b).map((s) => s.textContent).join("").trim();
          btn.textContent = text.length > 32 ? `${text.slice(0, 31)}…` : text || "(whitespace)";
          btn.title = `tokens ${a + 1}–${b}`;
          btn.addEventListener("click", () => this.focusToken(a));
          this.spansEl.append(btn);
        }
      }
    }
    if (this.onChange) this.onChange(this, final);
  }

  focusToken(i) {
    if (i < 0 || i >= this.spans.length) return;
    for (const s of this.spans) s.tabIndex = -1;
    this.spans[i].tabIndex = 0;
    this.spans[i].focus();
  }

  onKey(e) {
    const span = e.target.closest && e.target.closest(".tok");
    if (!span) return;
    const i = Number(span.dataset.i);
    const moves = { ArrowRight: i + 1, ArrowDown: i + 1, ArrowLeft: i - 1, ArrowUp: i - 1, Home: 0, End: this.spans.length - 1 };
    if (e.key in moves) {
      e.preventDefault();
      this.focusToken(Math.max(0, Math.min(this.spans.length - 1, moves[e.key])));
    } else if (e.key === "Escape") {
      this.tooltip.hide();
    }
  }
}
