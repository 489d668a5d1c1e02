// Shared by the page's modules: DOM building (text only, never HTML strings: product names come from strangers'
// CSVs), localStorage that tolerates being disabled, the API client and the error box.

export const TERMINAL = new Set(["completed", "completed_with_errors", "failed", "cancelled"]);
export const STORE = { key: "batchpress.apiKey", recent: "batchpress.recent" };

export const $ = (id) => document.getElementById(id);

// --- small helpers -----------------------------------------------------------------------------------------------

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Only http(s) URLs become links or image sources; anything else (javascript:, data:) is shown as text. */
export function safeUrl(value) {
  try {
    const url = new URL(value, location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

export const storage = {
  get(name) {
    try {
      return localStorage.getItem(name);
    } catch {
      return null; // storage disabled (private mode, policy): the page still works, it just forgets
    }
  },
  set(name, value) {
    try {
      if (value === null) localStorage.removeItem(name);
      else localStorage.setItem(name, value);
    } catch {
      /* see get() */
    }
  },
};

export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export function statusLabel(status) {
  return String(status || "").replaceAll("_", " ");
}

// --- API -----------------------------------------------------------------------------------------------------------

export class ApiFailure extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "http_error";
    this.details = error.details ?? null;
    this.requestId = error.request_id || null;
  }
}

export async function api(path, init = {}) {
  const headers = new Headers(init.headers || {});
  headers.set("Accept", "application/json");
  const key = storage.get(STORE.key);
  if (key) headers.set("X-API-Key", key);
  let response;
  try {
    response = await fetch(path, { ...init, headers });
  } catch {
    throw new ApiFailure(0, { code: "network", message: "Could not reach the server. Is it running?" });
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const error = body && body.error ? body.error : { message: `The server answered HTTP ${response.status}.` };
    throw new ApiFailure(response.status, error);
  }
  return body;
}

export function clearError() {
  $("error").replaceChildren();
}

export function showError(failure, title) {
  const box = $("error");
  const parts = [el("h2", {}, title), el("p", {}, failure.message)];
  if (failure.code === "invalid_csv" && Array.isArray(failure.details) && failure.details.length) {
    const rows = failure.details.map((d) =>
      el("tr", {}, el("td", {}, d.line ?? "–"), el("td", {}, d.field ?? "–"), el("td", {}, d.message ?? "")),
    );
    parts.push(
      el(
        "table",
        { class: "problems", id: "csv-problems" },
        el("caption", {}, "Problems in the CSV"),
        el(
          "thead",
          {},
          el("tr", {}, el("th", { scope: "col" }, "Line"), el("th", { scope: "col" }, "Field"), el("th", { scope: "col" }, "Message")),
        ),
        el("tbody", {}, ...rows),
      ),
    );
  }
  if (failure.requestId) parts.push(el("p", { class: "hint" }, "Reference for the server log: ", el("code", {}, failure.requestId)));
  box.replaceChildren(...parts);
}

