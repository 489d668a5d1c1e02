// The upload page: talks only to the public API (/api/upload/, /api/status/<id>/, /api/requests/...) and keeps its
// small state (recent request ids, an API key) in localStorage.

import { $, ApiFailure, STORE, TERMINAL, api, clearError, el, formatTime, safeUrl, showError, statusLabel, storage } from "./api.js";
import { PAGE_SIZE, clearProducts, renderProducts, savedText, sizesText } from "./products.js";
import { loadRequests, markCurrent, setupRequests, updateRequestRow } from "./requests.js";

const POLL_MS = 1000;
const RETRY_MS = 3000;
const MAX_RECENT = 20;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// --- the API key ---------------------------------------------------------------------------------------------------

let retryAfterKey = null;

/** A 401 opens the key form; once a key is saved, the action that failed runs again. */
function handleFailure(failure, title, retry) {
  if (failure.status === 401) {
    retryAfterKey = retry;
    const hadKey = Boolean(storage.get(STORE.key));
    showError(failure, hadKey ? "That API key was refused" : "An API key is needed");
    $("api-key-section").hidden = false;
    $("api-key").focus();
    return;
  }
  showError(failure, title);
  $("error").focus();
}

function setupApiKey() {
  if (storage.get(STORE.key)) $("api-key-section").hidden = false;
  $("api-key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("api-key").value.trim();
    if (!value) return;
    storage.set(STORE.key, value);
    $("api-key").value = "";
    clearError();
    const retry = retryAfterKey;
    retryAfterKey = null;
    if (retry) retry();
    loadRequests();
  });
  $("forget-key").addEventListener("click", () => {
    storage.set(STORE.key, null);
    $("api-key").value = "";
    $("api-key").focus();
    loadRequests({ quiet: true });
  });
}

// --- recent requests -----------------------------------------------------------------------------------------------

function loadRecent() {
  try {
    const list = JSON.parse(storage.get(STORE.recent) || "[]");
    return Array.isArray(list) ? list.filter((r) => r && UUID.test(r.id)) : [];
  } catch {
    return [];
  }
}

function saveRecent(list) {
  storage.set(STORE.recent, JSON.stringify(list.slice(0, MAX_RECENT)));
  renderRecent();
}

function rememberRequest(id, fileName) {
  const list = loadRecent().filter((r) => r.id !== id);
  list.unshift({ id, at: new Date().toISOString(), file: fileName || "", status: "pending" });
  saveRecent(list);
}

function forgetRecent(id) {
  const list = loadRecent();
  if (list.some((r) => r.id === id)) saveRecent(list.filter((r) => r.id !== id));
}

function recordStatus(id, status) {
  const list = loadRecent();
  const entry = list.find((r) => r.id === id);
  if (entry && entry.status !== status) {
    entry.status = status;
    saveRecent(list);
  }
}

function renderRecent() {
  const list = loadRecent();
  $("recent-empty").hidden = list.length > 0;
  $("clear-recent").hidden = list.length === 0;
  $("recent-list").replaceChildren(
    ...list.map((r) => {
      const link = el("a", { href: `#request=${r.id}`, class: "recent-link" }, r.file || r.id);
      if (current && current.id === r.id) link.setAttribute("aria-current", "true");
      return el(
        "li",
        {},
        link,
        " ",
        el("time", { datetime: r.at }, formatTime(r.at)),
        " ",
        el("span", { class: `badge status-${r.status}` }, statusLabel(r.status)),
        r.file ? el("span", { class: "hint id" }, ` ${r.id}`) : null,
      );
    }),
  );
}

// --- one request's live status -------------------------------------------------------------------------------------

let current = null; // {id, offset, next, timer, generation}
let generation = 0;

function showRequest(id, offset = 0) {
  if (current) clearTimeout(current.timer);
  generation += 1;
  const isNew = !current || current.id !== id;
  current = { id, offset, next: null, timer: null, generation };
  if (isNew) {
    clearProducts();
    $("output-wrap").hidden = true;
    $("webhook-line").hidden = true;
    $("status-value").textContent = "loading";
    $("progress-text").textContent = "";
    $("times").textContent = "";
  }
  $("request-id").textContent = id;
  $("request-section").hidden = false;
  renderRecent();
  markCurrent(id);
  poll(current.generation);
}

/** The request shown is gone (deleted): stop following it and show nothing in its place. */
function closeRequest() {
  if (current) clearTimeout(current.timer);
  generation += 1;
  current = null;
  clearProducts();
  $("request-section").hidden = true;
  if (requestFromHash()) history.replaceState(null, "", location.pathname + location.search);
  renderRecent();
  markCurrent(null);
}

async function poll(gen) {
  const { id, offset } = current;
  let data;
  try {
    data = await api(`/api/status/${encodeURIComponent(id)}/?offset=${offset}&limit=${PAGE_SIZE}`);
  } catch (failure) {
    if (gen !== generation) return;
    if (failure.status === 0 || failure.status >= 500) {
      showError(failure, "Could not refresh the status; trying again");
      current.timer = setTimeout(() => poll(gen), RETRY_MS);
    } else {
      $("status-value").textContent = "unavailable";
      handleFailure(failure, "Could not load this request", () => showRequest(id, offset));
    }
    return;
  }
  if (gen !== generation) return;
  if ($("error").textContent.startsWith("Could not refresh")) clearError();
  renderStatus(data);
  updateRequestRow(data);
  // A page can end before PAGE_SIZE products (the server bounds a page's bytes): the next one starts where it says.
  current.next = data.next_offset ?? null;
  recordStatus(id, data.status);
  if (!TERMINAL.has(data.status)) current.timer = setTimeout(() => poll(gen), POLL_MS);
}

function renderStatus(data) {
  const { total_images: total, processed, failed, pending } = data.progress;
  const reused = data.progress.reused || 0; // servers from before reuse do not count it
  const badge = $("status-value");
  badge.textContent = statusLabel(data.status);
  badge.className = `badge status-${data.status}`;
  const started = `uploaded ${formatTime(data.created_at)}`;
  $("times").textContent = data.finished_at ? `(${started}, finished ${formatTime(data.finished_at)})` : `(${started})`;

  const summary =
    `${statusLabel(data.status)}: ${processed} of ${total} images processed` +
    (reused ? ` (${reused} reused)` : "") +
    (failed ? `, ${failed} failed` : "") +
    (pending ? `, ${pending} pending` : "") +
    ".";
  if ($("progress-text").textContent !== summary) $("progress-text").textContent = summary;
  const bar = $("progress");
  bar.max = Math.max(total, 1);
  bar.value = total ? processed + failed : TERMINAL.has(data.status) ? 1 : 0;
  $("count-processed").textContent = processed;
  $("count-reused").textContent = reused;
  $("count-failed").textContent = failed;
  $("count-pending").textContent = pending;
  $("count-total").textContent = total;
  $("count-sizes").textContent = sizesText(data.progress.bytes_in, data.progress.bytes_out) || "–";
  $("count-saved").textContent = savedText(data.progress.bytes_in, data.progress.bytes_out);

  const csvUrl = data.output_csv_url && safeUrl(data.output_csv_url);
  if (csvUrl) $("output-csv").href = csvUrl;
  $("output-wrap").hidden = !csvUrl;

  const hook = data.webhook;
  $("webhook-line").hidden = !hook;
  if (hook) {
    const attempts = hook.attempts === 1 ? "1 attempt" : `${hook.attempts} attempts`;
    $("webhook-line").textContent = `Webhook to ${hook.url}: ${hook.state} (${attempts}).`;
  }

  renderProducts(data);
}


// --- upload --------------------------------------------------------------------------------------------------------

function setupUpload() {
  const form = $("upload-form");
  const input = $("csv-file");
  const zone = $("drop-zone");
  const button = $("upload-button");

  const showChosen = () => {
    const file = input.files && input.files[0];
    $("chosen-file").textContent = file ? `Selected: ${file.name} (${file.size.toLocaleString()} bytes)` : "";
  };
  input.addEventListener("change", showChosen);

  // A file dropped just outside the box would make the browser open it and leave the page.
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (event) => event.preventDefault());
  let depth = 0;
  zone.addEventListener("dragenter", (event) => {
    event.preventDefault();
    depth += 1;
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) zone.classList.remove("dragging");
  });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    depth = 0;
    zone.classList.remove("dragging");
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (!file) return;
    const transfer = new DataTransfer();
    transfer.items.add(file);
    input.files = transfer.files;
    showChosen();
    input.focus();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    const file = input.files && input.files[0];
    if (!file) {
      showError({ message: "Choose a CSV file first." }, "Nothing to upload");
      input.focus();
      return;
    }
    const body = new FormData(form);
    for (const [name, value] of [...body.entries()]) {
      if (typeof value === "string" && value.trim() === "") body.delete(name);
    }
    button.disabled = true;
    button.textContent = "Uploading…";
    try {
      const accepted = await api("/api/upload/", { method: "POST", body });
      rememberRequest(accepted.request_id, file.name);
      loadRequests();
      form.reset();
      showChosen();
      if (location.hash === `#request=${accepted.request_id}`) showRequest(accepted.request_id);
      else location.hash = `request=${accepted.request_id}`;
      $("request-heading").scrollIntoView({ block: "start" });
    } catch (failure) {
      handleFailure(failure, "The upload was not accepted", () => form.requestSubmit());
    } finally {
      button.disabled = false;
      button.textContent = "Upload";
    }
  });
}

// --- wiring --------------------------------------------------------------------------------------------------------

function requestFromHash() {
  const match = /^#request=(.+)$/.exec(location.hash);
  return match && UUID.test(match[1]) ? match[1].toLowerCase() : null;
}

function followHash() {
  const id = requestFromHash();
  if (id) {
    clearError();
    showRequest(id);
  }
}

function init() {
  setupApiKey();
  setupUpload();
  setupRequests({
    onFailure: handleFailure,
    // A request cancelled or retried from the list, if it is the one shown, is polled again at once.
    onChanged: (id) => {
      if (current && current.id === id) showRequest(id, current.offset);
    },
    onDeleted: (id) => {
      forgetRecent(id);
      if (current && current.id === id) closeRequest();
    },
    currentId: () => (current ? current.id : null),
  });
  renderRecent();
  loadRequests({ quiet: true });
  window.addEventListener("hashchange", followHash);
  // Clicking the request already shown refreshes it (the hash does not change, so no hashchange fires).
  $("recent-list").addEventListener("click", (event) => {
    const link = event.target instanceof Element ? event.target.closest("a.recent-link") : null;
    if (link && link.getAttribute("href") === location.hash) followHash();
  });
  $("clear-recent").addEventListener("click", () => {
    storage.set(STORE.recent, null);
    renderRecent();
  });
  $("prev-page").addEventListener("click", () => showRequest(current.id, Math.max(0, current.offset - PAGE_SIZE)));
  $("next-page").addEventListener("click", () => {
    if (current.next !== null) showRequest(current.id, current.next);
  });
  $("output-csv").addEventListener("click", downloadWithKey);
  followHash();
}

/** A plain link cannot send X-API-Key, so with a key set the CSV is fetched and handed over as a blob. */
async function downloadWithKey(event) {
  const key = storage.get(STORE.key);
  if (!key) return;
  event.preventDefault();
  const link = event.currentTarget;
  try {
    const response = await fetch(link.href, { headers: { "X-API-Key": key } });
    if (!response.ok) {
      let error = { message: `The server answered HTTP ${response.status}.` };
      try {
        error = (await response.json()).error || error;
      } catch {
        /* not JSON */
      }
      throw new ApiFailure(response.status, error);
    }
    const url = URL.createObjectURL(await response.blob());
    const temp = el("a", { href: url, download: `batchpress-${current.id}.csv` });
    document.body.append(temp);
    temp.click();
    temp.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (failure) {
    const problem = failure instanceof ApiFailure ? failure : new ApiFailure(0, { message: String(failure) });
    handleFailure(problem, "Could not download the output CSV", () => link.click());
  }
}

init();
