// The chat page: conversations, the composer, the settings sent with each request, and
// the replies streaming in with their per-token uncertainty.

import * as api from "./api.js";
import { ReplyView, Tooltip } from "./reply.js";
import { EntropyChart } from "./chart.js";
import { legend } from "./uncertainty.js";
import * as store from "./store.js";
import { readSettings as formSettings, applySettings as applyForm, requestBody, metaLine, askKey, showModel } from "./controls.js";

const $ = (id) => document.getElementById(id);
const readSettings = () => formSettings(state.mode);
const applySettings = (s) => applyForm(s, setMode);

const state = {
  conversations: store.loadAll(),
  conv: null,
  model: null,        // the /v1/models entry in use
  abort: null,        // the AbortController of the reply being written
  views: [],          // ReplyView of each assistant message shown
  mode: "entropy",
};
const tooltip = new Tooltip($("tip"));

// -- status -----------------------------------------------------------------------------
function status(text, bad = false) {
  const s = $("status");
  s.textContent = text;
  s.classList.toggle("bad", bad);
}

function setMode(mode) {
  state.mode = mode;
  for (const r of document.querySelectorAll('input[name="color"]')) r.checked = r.value === mode;
  $("messages").classList.toggle("colour-off", mode === "off");
  const scale = mode === "off" ? "entropy" : mode;
  $("legend").replaceChildren(legend(scale));
  $("legend").hidden = mode === "off";
  for (const v of state.views) v.view.setMode(scale);
}

// -- conversations ----------------------------------------------------------------------
function persist() {
  if (state.conv) {
    state.conv.updated = Date.now();
    state.conv.title = store.titleOf(state.conv);
    if (!state.conversations.includes(state.conv)) state.conversations.push(state.conv);
  }
  const notice = store.saveAll(state.conversations);
  if (notice) status(notice, true);
  renderList();
}

function renderList() {
  const ul = $("conversations");
  ul.replaceChildren();
  const sorted = [...state.conversations].sort((a, b) => b.updated - a.updated);
  for (const c of sorted) {
    const li = document.createElement("li");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "open";
    open.textContent = c.title || "New chat";
    open.dataset.id = c.id;
    if (state.conv && c.id === state.conv.id) open.setAttribute("aria-current", "true");
    open.addEventListener("click", () => select(c.id));
    const del = document.createElement("button");
    del.type = "button";
    del.className = "delete";
    del.textContent = "×";
    del.setAttribute("aria-label", `Delete chat: ${c.title || "New chat"}`);
    del.addEventListener("click", () => remove(c.id));
    li.append(open, del);
    ul.append(li);
  }
}

function select(id) {
  if (state.abort) return;
  const conv = state.conversations.find((c) => c.id === id) || store.newConversation();
  state.conv = conv;
  store.setCurrentId(conv.id);
  $("system").value = conv.system || "";
  $("system-box").open = Boolean(conv.system);
  renderMessages();
  renderList();
}

function remove(id) {
  if (state.abort) return;
  state.conversations = state.conversations.filter((c) => c.id !== id);
  store.saveAll(state.conversations);
  if (state.conv && state.conv.id === id) {
    const next = [...state.conversations].sort((a, b) => b.updated - a.updated)[0];
    select(next ? next.id : null);
  } else renderList();
}

function newChat() {
  if (state.abort) return;
  state.conv = store.newConversation();
  store.setCurrentId(state.conv.id);
  $("system").value = "";
  renderMessages();
  renderList();
  $("prompt").focus();
}

// -- messages ---------------------------------------------------------------------------
function messageShell(role) {
  const art = document.createElement("article");
  art.className = `msg ${role}`;
  const who = document.createElement("div");
  who.className = "who";
  who.textContent = role === "user" ? "you" : role;
  const text = document.createElement("div");
  text.className = "msg-text";
  art.append(who, text);
  $("messages").append(art);
  return { art, text };
}

function renderUser(m) {
  const { text } = messageShell("user");
  text.textContent = m.content; // text, never markup
}

function renderAssistant(m) {
  const { art, text } = messageShell("assistant");
  text.setAttribute("role", "group");
  text.setAttribute("aria-label", "reply; Tab to its first token, arrow keys between tokens");
  if (m.interrupted) art.classList.add("interrupted");
  const spansEl = document.createElement("div");
  spansEl.className = "spans";
  const chartBox = document.createElement("div");
  const meta = document.createElement("div");
  meta.className = "meta";
  // the chart above the text: the text grows downwards without moving (repainting) it
  text.before(chartBox);
  art.append(spansEl, meta);
  const scale = state.mode === "off" ? "entropy" : state.mode;
  let chart = null;
  const view = new ReplyView(text, {
    mode: scale, tooltip, spansEl,
    onChange: (v, final) => {
      if (!v.records.length) return;
      // while writing, keep the newest text in view unless the reader scrolled up
      const bottom = document.documentElement.scrollHeight - window.innerHeight - window.scrollY;
      if (art.classList.contains("streaming") && bottom < 120) art.scrollIntoView({ block: "end" });
      if (!chart) chart = new EntropyChart(chartBox, { onPick: (i) => v.focusToken(i) });
      chart.update(v.records, v.mode, final);
    },
  });
  const entry = { view, art, meta, message: m };
  state.views.push(entry);
  if (Array.isArray(m.logprobs) && m.logprobs.length) view.addEntries(m.logprobs);
  else view.addText(m.content);
  if (m.content || (m.logprobs && m.logprobs.length)) view.finish(m.content);
  meta.textContent = metaLine(m);
  return entry;
}

function renderMessages() {
  tooltip.hide();
  state.views = [];
  $("messages").replaceChildren();
  for (const m of state.conv.messages) {
    if (m.role === "user") renderUser(m);
    else if (m.role === "assistant") renderAssistant(m);
  }
  updateButtons();
}

function updateButtons() {
  const busy = Boolean(state.abort);
  $("send").disabled = busy;
  $("stop").disabled = !busy;
  const msgs = state.conv ? state.conv.messages : [];
  $("regenerate").disabled = busy || !msgs.some((m) => m.role === "user");
  for (const id of ["new-chat", "export-chat", "import-file"]) $(id).disabled = busy;
}

// -- writing a reply --------------------------------------------------------------------
async function generate() {
  const conv = state.conv;
  const history = conv.messages.slice();
  const body = requestBody(conv, history, state.model);
  const m = { role: "assistant", content: "", logprobs: [] };
  conv.messages.push(m);
  const entry = renderAssistant(m);
  entry.art.classList.add("streaming");
  entry.art.setAttribute("aria-busy", "true");
  const ctrl = new AbortController();
  state.abort = ctrl;
  updateButtons();
  status("writing…");
  let retry = false;
  try {
    for await (const chunk of api.chatStream(body, ctrl.signal)) {
      const ch = Array.isArray(chunk.choices) ? chunk.choices[0] : null;
      if (ch) {
        const d = ch.delta || {};
        if (typeof d.content === "string") m.content += d.content;
        const lp = ch.logprobs && Array.isArray(ch.logprobs.content) ? ch.logprobs.content : null;
        if (lp && lp.length) {
          m.logprobs.push(...lp);
          entry.view.addEntries(lp);
        } else if (d.content && !m.logprobs.length) {
          entry.view.addText(d.content); // no per-token data from the server
        }
        if (ch.finish_reason) m.finish_reason = ch.finish_reason;
        if (ch.entropic) m.entropic = ch.entropic;
      }
      if (chunk.usage) m.usage = chunk.usage;
      if (chunk.timings) m.timings = chunk.timings;
      if (chunk.model) m.model = chunk.model;
    }
    status("");
  } catch (e) {
    if (e && e.name === "AbortError") {
      m.interrupted = true;
      entry.art.classList.add("interrupted");
      status("stopped");
    } else if (e && e.status === 401 && !m.logprobs.length) {
      retry = true;
    } else {
      entry.art.classList.add("error");
      status(`error: ${e && e.message ? e.message : e}`, true);
      if (!m.content && !m.logprobs.length) m.error = String(e && e.message ? e.message : e);
    }
  } finally {
    state.abort = null;
    entry.art.classList.remove("streaming");
    entry.art.removeAttribute("aria-busy");
    entry.view.finish(m.content);
    entry.meta.textContent = metaLine(m);
    if (!m.logprobs.length) delete m.logprobs;
    if (retry || m.error) {
      // nothing was written: the reply is not kept
      conv.messages.pop();
      entry.art.remove();
      state.views.pop();
    }
    persist();
    updateButtons();
  }
  if (retry && await askKey("This server needs an API key (the last request was refused).")) {
    await generate();
    return;
  }
  if (!retry && !m.error && !m.interrupted) status("reply finished");
}

async function send(text) {
  if (state.abort || !state.conv) return;
  state.conv.system = $("system").value;
  state.conv.messages.push({ role: "user", content: text });
  renderUser(state.conv.messages[state.conv.messages.length - 1]);
  persist();
  await generate();
}

async function regenerate() {
  if (state.abort || !state.conv) return;
  const msgs = state.conv.messages;
  while (msgs.length && msgs[msgs.length - 1].role === "assistant") msgs.pop();
  if (!msgs.length) return;
  state.conv.system = $("system").value;
  renderMessages();
  await generate();
}

// -- export and import ------------------------------------------------------------------
function exportChat() {
  if (!state.conv) return;
  const data = store.exportConversation(state.conv, { model: state.model ? state.model.id : null, settings: readSettings() });
  const blob = new Blob([JSON.stringify(data, null, 2) + "\n"], { type: "application/json" });
  const a = document.createElement("a");
  const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
  a.href = URL.createObjectURL(blob);
  a.download = `chat-${stamp}.json`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  status(`exported ${a.download}`);
}

async function importChat(file) {
  let data;
  try {
    data = JSON.parse(await file.text());
  } catch (e) {
    status(`cannot import ${file.name}: not valid JSON`, true);
    return;
  }
  try {
    const { conversation, settings, model } = store.importConversation(data);
    state.conversations.push(conversation);
    state.conv = conversation;
    applySettings(settings);
    store.setCurrentId(conversation.id);
    persist();
    select(conversation.id);
    const note = model && state.model && model !== state.model.id ? ` (saved with model ${model}; continuing with ${state.model.id})` : "";
    status(`imported ${file.name}${note}`);
  } catch (e) {
    status(`cannot import ${file.name}: ${e.message}`, true);
  }
}

// -- the model --------------------------------------------------------------------------
async function loadModel() {
  try {
    const list = await api.models();
    state.model = list && Array.isArray(list.data) && list.data.length ? list.data[0] : null;
    let health = null;
    try { health = await api.health(); } catch { /* shown as unknown */ }
    showModel(state.model, health);
  } catch (e) {
    if (e && e.status === 401) {
      $("model-info").textContent = "API key needed";
      if (await askKey()) return loadModel();
      return;
    }
    $("model-info").textContent = `server not reachable: ${e && e.message ? e.message : e}`;
  }
}

// -- wiring -----------------------------------------------------------------------------
function init() {
  const saved = store.loadSettings();
  applySettings(saved);
  setMode(["entropy", "logprob", "off"].includes(saved.color) ? saved.color : "entropy");
  const cur = store.currentId();
  const sorted = [...state.conversations].sort((a, b) => b.updated - a.updated);
  const first = state.conversations.find((c) => c.id === cur) || sorted[0];
  if (first) select(first.id);
  else newChat();

  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("prompt").value;
    if (!text.trim() || state.abort) return;
    $("prompt").value = "";
    send(text);
  });
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("stop").addEventListener("click", () => state.abort && state.abort.abort());
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && state.abort && !$("key-dialog").open) state.abort.abort();
  });
  $("regenerate").addEventListener("click", regenerate);
  $("new-chat").addEventListener("click", newChat);
  $("export-chat").addEventListener("click", exportChat);
  $("import-file").addEventListener("change", (e) => {
    const f = e.target.files && e.target.files[0];
    if (f) importChat(f);
    e.target.value = "";
  });
  $("system").addEventListener("change", () => {
    if (!state.conv) return;
    state.conv.system = $("system").value;
    if (state.conv.messages.length) persist();
  });
  $("settings").addEventListener("input", () => store.saveSettings(readSettings()));
  $("settings").addEventListener("submit", (e) => e.preventDefault());
  for (const r of document.querySelectorAll('input[name="color"]')) {
    r.addEventListener("change", () => { setMode(r.value); store.saveSettings(readSettings()); });
  }
  $("key-button").addEventListener("click", async () => { if (await askKey("The API key this page sends (kept in this browser only).")) loadModel(); });
  // another tab changed the stored chats: show the new list (the open chat stays as it is)
  window.addEventListener("storage", (e) => {
    if (e.key !== "entropic-local.conversations" || state.abort) return;
    const others = store.loadAll();
    const mine = state.conv;
    state.conversations = others.map((c) => (mine && c.id === mine.id ? mine : c));
    renderList();
  });
  loadModel();
}

init();
