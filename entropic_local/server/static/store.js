// Conversations kept in this browser (localStorage), and their export and import as the
// terminal chat's saved-chat JSON: {"format": "entropic-local-chat", "version": 1, "model",
// "settings", "context_start", "messages": [OpenAI messages]}. An assistant message may
// carry "interrupted": true and "logprobs": {"content": [...]} (the API's per-token
// entries); the terminal's /load reads the file and ignores what it does not use.

export const SAVE_FORMAT = "entropic-local-chat";
export const SAVE_VERSION = 1;
const KEY = "entropic-local.conversations";
const CURRENT = "entropic-local.current";
const SETTINGS = "entropic-local.settings";
const ROLES = new Set(["system", "user", "assistant"]);

const newId = () => `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;

export function newConversation() {
  const now = Date.now();
  return { id: newId(), title: "New chat", created: now, updated: now, system: "", messages: [] };
}

export function titleOf(conv) {
  const first = conv.messages.find((m) => m.role === "user");
  if (!first) return "New chat";
  const t = first.content.replace(/\s+/g, " ").trim();
  return t.length > 48 ? `${t.slice(0, 47)}…` : t || "New chat";
}

function readJSON(key, fallback) {
  try {
    const raw = localStorage.getItem(key);
    return raw ? JSON.parse(raw) : fallback;
  } catch { return fallback; }
}

export function loadAll() {
  const list = readJSON(KEY, []);
  return Array.isArray(list) ? list.filter((c) => c && typeof c.id === "string" && Array.isArray(c.messages)) : [];
}

// Save every conversation; when the browser's quota is reached, the per-token data of
// the oldest conversations goes first (their text stays). Returns a notice or null.
export function saveAll(conversations) {
  const sorted = [...conversations].sort((a, b) => a.updated - b.updated);
  for (let dropped = 0; ; dropped++) {
    try {
      localStorage.setItem(KEY, JSON.stringify(conversations));
      return dropped ? `browser storage is full: dropped the token data of ${dropped} older chat(s)` : null;
    } catch (e) {
      const victim = sorted[dropped];
      if (!victim || dropped >= sorted.length) return `cannot save chats in this browser: ${e.message}`;
      for (const m of victim.messages) delete m.logprobs;
    }
  }
}

export const currentId = () => { try { return localStorage.getItem(CURRENT); } catch { return null; } };
export const setCurrentId = (id) => { try { localStorage.setItem(CURRENT, id); } catch { /* ignore */ } };
export const loadSettings = () => readJSON(SETTINGS, {});
export const saveSettings = (s) => { try { localStorage.setItem(SETTINGS, JSON.stringify(s)); } catch { /* ignore */ } };

// The saved-chat object of a conversation (what the terminal's /save writes).
export function exportConversation(conv, { model = null, settings = {} } = {}) {
  const messages = [];
  if (conv.system) messages.push({ role: "system", content: conv.system });
  for (const m of conv.messages) {
    const out = { role: m.role, content: m.content };
    if (m.interrupted) out.interrupted = true;
    if (m.role === "assistant" && Array.isArray(m.logprobs) && m.logprobs.length) out.logprobs = { content: m.logprobs };
    if (m.entropic) out.entropic = m.entropic;
    messages.push(out);
  }
  const s = {
    sampler: settings.sampler || null,
    seed: Number.isInteger(settings.seed) && settings.seed >= 0 ? settings.seed : null,
    max_tokens: Number.isInteger(settings.max_tokens) && settings.max_tokens >= 1 ? settings.max_tokens : null,
    system: conv.system || null,
    color: settings.color || "entropy",
  };
  for (const [k, v] of Object.entries(settings)) if (!(k in s) && v !== null && v !== undefined && v !== "") s[k] = v;
  return { format: SAVE_FORMAT, version: SAVE_VERSION, model, settings: s, context_start: 0, title: conv.title, messages };
}

// A conversation from a saved chat (an object with "messages", or a bare list of
// messages), checked the way the terminal's /load checks it. Throws Error with what is wrong.
export function importConversation(data) {
  if (Array.isArray(data)) data = { messages: data };
  if (!data || typeof data !== "object" || !Array.isArray(data.messages)) {
    throw new Error("expected a saved chat (an object with a 'messages' list, or a list of messages)");
  }
  const conv = newConversation();
  data.messages.forEach((m, i) => {
    if (!m || typeof m !== "object" || !ROLES.has(m.role) || typeof m.content !== "string") {
      throw new Error(`message ${i} is not a {role: system|user|assistant, content: text} object`);
    }
    if (m.role === "system") {
      if (i !== 0) throw new Error(`a system message may only come first (message ${i})`);
      conv.system = m.content;
      return;
    }
    const msg = { role: m.role, content: m.content };
    if (m.interrupted) msg.interrupted = true;
    const lp = m.logprobs && Array.isArray(m.logprobs.content) ? m.logprobs.content : null;
    if (m.role === "assistant" && lp) msg.logprobs = lp.filter((e) => e && typeof e === "object");
    if (m.entropic && typeof m.entropic === "object") msg.entropic = m.entropic;
    conv.messages.push(msg);
  });
  const settings = data.settings && typeof data.settings === "object" && !Array.isArray(data.settings) ? data.settings : {};
  if (settings.system && !conv.system && typeof settings.system === "string") conv.system = settings.system;
  conv.title = typeof data.title === "string" && data.title.trim() ? data.title.trim().slice(0, 80) : titleOf(conv);
  return { conversation: conv, settings, model: typeof data.model === "string" ? data.model : null };
}
