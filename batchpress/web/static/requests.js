// The requests list: what GET /api/requests/ lists for this caller (with API keys on, the key's own), newest first, a
// page at a time, with Cancel (while open), Retry (finished with failed images) and Delete (finished, asked first).
// Rows are built as text only, like the product table.

import { $, TERMINAL, api, clearError, el, formatTime, statusLabel } from "./api.js";
import { savedText } from "./products.js";

const LIST_PAGE = 20;
const WATCH_MS = 1000;
const TITLES = {
  cancel: "Could not cancel the request",
  retry: "Could not retry the request",
  delete: "Could not delete the request",
};

// What app.js does when something here concerns the rest of the page.
let hooks = {
  onFailure: (failure, title) => console.warn(title, failure),
  onChanged: () => {}, // a request was cancelled or retried: the view showing it refreshes
  onDeleted: () => {}, // a request is gone: the view showing it and the browser's recent list forget it
  currentId: () => null,
};
let nextCursor = null;
let generation = 0; // a reload (filter, refresh, key) drops the answers still on their way for the one before
const rowKeys = new Map(); // id -> what its row shows, so an unchanged row (and the focus in it) is left alone
const cancelling = new Set(); // cancelled here, still finishing its images in flight
const watched = new Map(); // id -> timer: requests acted on here are followed until they finish

export function setupRequests(given) {
  hooks = { ...hooks, ...given };
  $("requests-filter").addEventListener("change", () => loadRequests());
  $("requests-refresh").addEventListener("click", () => loadRequests());
  $("requests-more").addEventListener("click", () => loadPage(nextCursor, generation));
  $("requests-list").addEventListener("click", (event) => {
    const button = event.target instanceof Element ? event.target.closest("button[data-action]") : null;
    const row = button && button.closest("li[data-id]");
    if (row) runAction(button.dataset.action, row.dataset.id);
  });
  $("requests-key").addEventListener("click", () => {
    $("api-key-section").hidden = false;
    $("api-key").focus();
  });
}

/** The first page again. ``quiet``: a 401 only says so in the list (on opening the page, before any action). */
export function loadRequests({ quiet = false } = {}) {
  generation += 1;
  nextCursor = null;
  for (const timer of watched.values()) clearTimeout(timer);
  watched.clear();
  return loadPage(null, generation, { fresh: true, quiet });
}

async function loadPage(cursor, gen, { fresh = false, quiet = false } = {}) {
  const params = new URLSearchParams({ limit: String(LIST_PAGE) });
  const status = $("requests-filter").value;
  if (status) params.set("status", status);
  if (cursor) params.set("cursor", cursor);
  const more = $("requests-more");
  more.disabled = true;
  let page;
  try {
    page = await api(`/api/requests/?${params}`);
  } catch (failure) {
    if (gen !== generation) return;
    more.disabled = false;
    if (failure.status === 401 && quiet) {
      $("requests-list").replaceChildren();
      rowKeys.clear();
      more.hidden = true;
      showMessage("This server needs an API key to list requests.", true);
      return;
    }
    hooks.onFailure(failure, "Could not list the requests", () => loadPage(cursor, gen, { fresh }));
    return;
  }
  if (gen !== generation) return;
  const rows = page.requests.map((r) => requestRow(r));
  if (fresh) {
    $("requests-list").replaceChildren(...rows);
    rowKeys.clear();
  } else {
    $("requests-list").append(...rows);
  }
  for (const r of page.requests) rowKeys.set(r.request_id, rowKey(r));
  nextCursor = page.next_cursor;
  more.hidden = !nextCursor;
  more.disabled = false;
  showEmpty();
}

function showMessage(text, askForKey = false) {
  $("requests-message").textContent = text;
  $("requests-key").hidden = !askForKey;
}

function showEmpty() {
  const status = $("requests-filter").value;
  const empty = $("requests-list").children.length === 0;
  showMessage(empty ? (status ? `No ${statusLabel(status)} requests.` : "No requests yet.") : "");
}

// --- rows ----------------------------------------------------------------------------------------------------------

function rowKey(r) {
  return JSON.stringify([r.status, r.progress, r.finished_at, cancelling.has(r.request_id)]);
}

function actionButton(action, label, id, extra = "") {
  return el(
    "button",
    { type: "button", class: `secondary ${extra}`.trim(), "data-action": action, "aria-label": `${label} request ${id}` },
    label,
  );
}

function requestRow(r) {
  const id = r.request_id;
  const p = r.progress;
  const finished = TERMINAL.has(r.status);
  const counts =
    `${p.processed} of ${p.total_images} ${p.total_images === 1 ? "image" : "images"} done` +
    (p.failed ? `, ${p.failed} failed` : "") +
    (p.pending ? `, ${p.pending} pending` : "");
  const link = el("a", { href: `#request=${id}`, class: "request-link" }, el("code", {}, id));
  if (hooks.currentId() === id) link.setAttribute("aria-current", "true");
  const actions = [];
  if (!finished && !cancelling.has(id)) actions.push(actionButton("cancel", "Cancel", id));
  if (finished && p.failed > 0) actions.push(actionButton("retry", "Retry", id));
  if (finished) actions.push(actionButton("delete", "Delete", id, "danger"));
  return el(
    "li",
    { "data-id": id, "data-status": r.status },
    el("div", { class: "request-head" }, link, el("span", { class: `badge status-${r.status}` }, statusLabel(r.status))),
    el(
      "p",
      { class: "request-meta" },
      el("time", { datetime: r.created_at }, formatTime(r.created_at)),
      ` · ${counts}`,
      p.bytes_in ? ` · saved ${savedText(p.bytes_in, p.bytes_out)}` : null,
    ),
    cancelling.has(id) && !finished ? el("p", { class: "hint" }, "Cancelling: images in flight finish first.") : null,
    actions.length ? el("div", { class: "actions" }, ...actions) : null,
  );
}

function rowOf(id) {
  return $("requests-list").querySelector(`li[data-id="${CSS.escape(id)}"]`);
}

/** Show a request's new state (a status or a request summary: both have its fields) in its row, if it is listed. */
export function updateRequestRow(r) {
  if (TERMINAL.has(r.status)) cancelling.delete(r.request_id);
  const old = rowOf(r.request_id);
  const key = rowKey(r);
  if (!old || rowKeys.get(r.request_id) === key) return;
  const row = requestRow(r);
  const hadFocus = old.contains(document.activeElement);
  old.replaceWith(row);
  rowKeys.set(r.request_id, key);
  if (hadFocus) (row.querySelector("button") || row.querySelector("a")).focus();
}

/** The request shown below the upload form is marked in the list. */
export function markCurrent(id) {
  for (const link of $("requests-list").querySelectorAll("a.request-link")) {
    if (link.getAttribute("href") === `#request=${id}`) link.setAttribute("aria-current", "true");
    else link.removeAttribute("aria-current");
  }
}

function removeRow(id) {
  const row = rowOf(id);
  if (row) {
    const next = row.nextElementSibling || row.previousElementSibling;
    const hadFocus = row.contains(document.activeElement);
    row.remove();
    if (hadFocus) (next ? next.querySelector("a") : $("requests-refresh")).focus();
  }
  rowKeys.delete(id);
  cancelling.delete(id);
  clearTimeout(watched.get(id));
  watched.delete(id);
  showEmpty();
}

/** Follow a request acted on here until it finishes (a cancel waiting for images in flight, a retry running). */
function watch(id, gen = generation) {
  clearTimeout(watched.get(id));
  watched.set(
    id,
    setTimeout(async () => {
      if (gen !== generation || !rowOf(id)) return;
      try {
        const status = await api(`/api/status/${encodeURIComponent(id)}/?limit=1`);
        if (gen !== generation) return;
        updateRequestRow(status);
        if (!TERMINAL.has(status.status)) watch(id, gen);
        else watched.delete(id);
      } catch (failure) {
        if (failure.status === 404) removeRow(id);
        else if (gen === generation) watch(id, gen);
      }
    }, WATCH_MS),
  );
}

// --- actions -------------------------------------------------------------------------------------------------------

async function runAction(action, id, asked = false) {
  const confirmation =
    `Delete request ${id}?\n\n` +
    "Its status, output CSV and the compressed images no other request uses are removed for good.";
  if (action === "delete" && !asked && !window.confirm(confirmation)) return;
  const row = rowOf(id);
  const buttons = row ? [...row.querySelectorAll("button")] : [];
  for (const button of buttons) button.disabled = true;
  clearError();
  const path = `/api/requests/${encodeURIComponent(id)}/`;
  try {
    if (action === "delete") {
      await api(path, { method: "DELETE" });
      removeRow(id);
      hooks.onDeleted(id);
      return;
    }
    const summary = await api(`${path}${action}/`, { method: "POST" });
    if (action === "cancel" && !TERMINAL.has(summary.status)) cancelling.add(id);
    if (action === "retry") cancelling.delete(id);
    rowKeys.delete(id); // redraw it: its buttons were disabled
    updateRequestRow(summary);
    if (!TERMINAL.has(summary.status)) watch(id);
    hooks.onChanged(id);
  } catch (failure) {
    for (const button of buttons) button.disabled = false;
    hooks.onFailure(failure, TITLES[action], () => runAction(action, id, true));
    if (failure.status === 404) removeRow(id);
    else if (failure.status === 409) watch(id); // it moved on since it was listed: show where it is now
  }
}
