// The controls around the chat: the settings form (sent as request fields with each
// message), the request built from it, a reply's summary line, the API key dialog and the
// model's details.

import * as api from "./api.js";
import { fmt } from "./uncertainty.js";

const $ = (id) => document.getElementById(id);
export const NUMBER_FIELDS = {
  temperature: parseFloat, top_p: parseFloat, top_k: (v) => parseInt(v, 10), min_p: parseFloat,
  repeat_penalty: parseFloat, presence_penalty: parseFloat, frequency_penalty: parseFloat,
  seed: (v) => parseInt(v, 10), max_tokens: (v) => parseInt(v, 10), top_logprobs: (v) => parseInt(v, 10),
};

export function readSettings(mode) {
  const s = { sampler: $("sampler").value.trim(), color: mode };
  for (const [name, parse] of Object.entries(NUMBER_FIELDS)) {
    const raw = $(name).value.trim();
    if (raw === "") continue;
    const v = parse(raw);
    if (Number.isFinite(v)) s[name] = v;
  }
  const stop = $("stop-strings").value.split("\n").filter((x) => x !== "");
  if (stop.length) s.stop = stop;
  return s;
}

export function applySettings(s, setMode) {
  if (!s || typeof s !== "object") return;
  if (typeof s.sampler === "string") $("sampler").value = s.sampler;
  for (const name of Object.keys(NUMBER_FIELDS)) {
    if (name in s) $(name).value = s[name] === null || s[name] === undefined ? "" : String(s[name]);
  }
  if (Array.isArray(s.stop)) $("stop-strings").value = s.stop.filter((x) => typeof x === "string").join("\n");
  if (["entropy", "logprob", "off"].includes(s.color)) setMode(s.color);
}

// The request: the conversation's messages and the page's settings as request fields.
export function requestBody(conv, messages, model) {
  const s = readSettings(null);
  const body = { messages: [] };
  if (model) body.model = model.id;
  if (conv.system) body.messages.push({ role: "system", content: conv.system });
  for (const m of messages) body.messages.push({ role: m.role, content: m.content });
  body.stream_options = { include_usage: true };
  body.logprobs = true;
  body.top_logprobs = Number.isInteger(s.top_logprobs) ? Math.max(0, Math.min(20, s.top_logprobs)) : 5;
  if (s.sampler) body.sampler = s.sampler;
  for (const k of ["temperature", "top_p", "top_k", "min_p", "repeat_penalty", "presence_penalty", "frequency_penalty", "seed", "max_tokens"]) {
    if (k in s) body[k] = s[k];
  }
  if (s.stop) body.stop = s.stop;
  return body;
}

// A reply's summary: tokens, speed, the server's `entropic` summary, why it ended.
export function metaLine(m) {
  const parts = [];
  const n = (m.usage && m.usage.completion_tokens) || (m.logprobs ? m.logprobs.length : 0);
  if (n) parts.push(`${n} tokens`);
  const tps = m.timings && (m.timings.predicted_per_second ?? m.timings.tokens_per_second);
  if (typeof tps === "number") parts.push(`${tps.toFixed(1)} tokens/s`);
  if (m.entropic && typeof m.entropic === "object") {
    for (const [k, v] of Object.entries(m.entropic)) {
      if (v === null || v === undefined) continue;
      if (typeof v === "number") parts.push(`${k.replace(/_/g, " ")} ${Number.isInteger(v) ? v : fmt(v)}`);
      else if (typeof v === "string") parts.push(`${k.replace(/_/g, " ")} ${v}`);
      else if (typeof v === "object" && !Array.isArray(v)) {
        const inner = Object.entries(v).filter(([, x]) => typeof x === "number" || typeof x === "string").map(([a, x]) => `${a} ${x}`);
        if (inner.length) parts.push(`${k.replace(/_/g, " ")}: ${inner.join(", ")}`);
      }
    }
  }
  if (m.finish_reason) parts.push(`finish: ${m.finish_reason}`);
  return parts.join(" · ");
}

// Ask for the API key (a modal dialog); resolves true when one was saved.
export function askKey(reason) {
  const dlg = $("key-dialog");
  $("key-reason").textContent = reason || "This server asks for an API key. It is kept in this browser only.";
  $("key-input").value = api.apiKey();
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => {
      if (dlg.returnValue === "save") api.setApiKey($("key-input").value.trim());
      else if (dlg.returnValue === "forget") api.setApiKey("");
      resolve(dlg.returnValue === "save");
    }, { once: true });
    dlg.returnValue = "";
    dlg.showModal();
    $("key-input").focus();
  });
}

// The model's entry from /v1/models (and /health) as a definition list.
export function showModel(entry, health) {
  const dl = $("model-details");
  dl.replaceChildren();
  const add = (k, v) => {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = typeof v === "number" && !Number.isInteger(v) ? fmt(v) : String(v);
    dl.append(dt, dd);
  };
  const flat = (obj, prefix = "") => {
    for (const [k, v] of Object.entries(obj || {})) {
      if (v === null || v === undefined || k === "object") continue;
      if (typeof v === "object" && !Array.isArray(v)) flat(v, `${prefix}${k}.`);
      else if (!Array.isArray(v)) add(`${prefix}${k}`, v);
    }
  };
  flat(entry);
  if (health && typeof health === "object") flat(health, "health.");
  $("model-info").textContent = entry ? entry.id : "no model";
}
