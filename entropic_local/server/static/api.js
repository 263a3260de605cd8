// The server's OpenAI-shaped HTTP API: JSON requests, server-sent event streams, errors.
// Nothing here touches the page; app.js decides what to show.

const KEY_STORAGE = "entropic-local.api-key";

export class ApiError extends Error {
  // status: the HTTP status (0: no answer); type/code: OpenAI's error fields when the server sent them.
  constructor(message, status = 0, type = null, code = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = type;
    this.code = code;
  }
}

export function apiKey() {
  try { return localStorage.getItem(KEY_STORAGE) || ""; } catch { return ""; }
}

export function setApiKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch { /* private mode: the key lives for this page only */ }
}

function headers(json) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  const key = apiKey();
  if (key) h["Authorization"] = `Bearer ${key}`;
  return h;
}

async function errorFrom(resp) {
  let message = `${resp.status} ${resp.statusText}`.trim();
  let type = null, code = null;
  try {
    const body = await resp.json();
    if (body && body.error) {
      message = body.error.message || message;
      type = body.error.type || null;
      code = body.error.code || null;
    }
  } catch { /* not JSON */ }
  return new ApiError(message, resp.status, type, code);
}

async function request(path, init = {}) {
  let resp;
  try {
    resp = await fetch(path, { ...init, headers: { ...headers(init.body !== undefined), ...(init.headers || {}) } });
  } catch (e) {
    if (e && e.name === "AbortError") throw e;
    throw new ApiError(`cannot reach the server (${e && e.message ? e.message : e})`, 0);
  }
  if (!resp.ok) throw await errorFrom(resp);
  return resp;
}

export async function getJSON(path) {
  const resp = await request(path);
  return resp.json();
}

// Server-sent events from a byte stream: yields each event's data (lines joined by "\n").
// Follows the WHATWG event-stream rules for the fields the server uses: "data", comments
// (":" lines) ignored, events separated by a blank line, CRLF or LF line ends.
export async function* sseEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let data = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let nl;
      while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
        if (nl === buffer.length - 1 && buffer[nl] === "\r") break; // a "\n" may follow in the next read
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + (buffer.startsWith("\r\n", nl) ? 2 : 1));
        if (line === "") {
          if (data.length) yield data.join("\n");
          data = [];
        } else if (line.startsWith("data:")) {
          data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
        } // "event:", "id:", "retry:" and ":" comments carry nothing we use
      }
    }
    if (data.length) yield data.join("\n");
  } finally {
    reader.releaseLock();
  }
}

// POST /v1/chat/completions with stream: true; yields each chat.completion.chunk object.
// `signal` (an AbortSignal) stops the stream: the fetch is aborted, the server sees the
// client leave and cancels the request.
export async function* chatStream(body, signal) {
  const resp = await request("/v1/chat/completions", {
    method: "POST",
    body: JSON.stringify({ ...body, stream: true }),
    signal,
  });
  for await (const data of sseEvents(resp.body)) {
    if (data === "[DONE]") return;
    let chunk;
    try { chunk = JSON.parse(data); } catch { throw new ApiError(`the server sent a malformed event: ${data.slice(0, 80)}`); }
    if (chunk && chunk.error) {
      throw new ApiError(chunk.error.message || "the server reported an error", 0, chunk.error.type, chunk.error.code);
    }
    yield chunk;
  }
}

export const models = () => getJSON("/v1/models");
export const health = () => getJSON("/health");
