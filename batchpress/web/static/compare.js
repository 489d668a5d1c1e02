// Before and after: a product image's source and output at full resolution, side by side (stacked on a phone), in
// scrollable panes that zoom together, each with its dimensions, format and size, and what compression saved.
// The images come from other origins, so they are plain <img> elements: no canvas, nothing read from their pixels.

import { $, el, safeUrl } from "./api.js";
import { sizeText } from "./products.js";

const ZOOMS = ["fit", "1", "2"];
const FORMATS = { jpg: "JPEG", jpeg: "JPEG", png: "PNG", webp: "WebP", avif: "AVIF", gif: "GIF", tif: "TIFF", tiff: "TIFF" };

let opener = null;
let zoom = "fit";
let syncing = false;

/** "JPEG" from ".../photo.jpg": the URL's extension, the way the service names its outputs; "unknown" without one. */
export function formatOf(url) {
  try {
    const match = /\.([a-z0-9]{1,5})$/i.exec(new URL(url).pathname);
    if (!match) return "unknown";
    const ext = match[1].toLowerCase();
    return FORMATS[ext] || ext.toUpperCase();
  } catch {
    return "unknown";
  }
}

function fact(term, value, attrs = {}) {
  return el("div", {}, el("dt", {}, term), el("dd", attrs, value));
}

function applyZoom(img) {
  if (!img || !img.naturalWidth) return;
  if (zoom === "fit") {
    img.style.width = "";
    img.classList.add("fit");
  } else {
    img.classList.remove("fit");
    img.style.width = `${img.naturalWidth * Number(zoom)}px`;
  }
}

function setZoom(value) {
  zoom = ZOOMS.includes(value) ? value : "fit";
  const dialog = $("compare");
  dialog.dataset.zoom = zoom;
  for (const button of dialog.querySelectorAll("[data-zoom]")) {
    button.setAttribute("aria-pressed", String(button.dataset.zoom === zoom));
  }
  for (const img of dialog.querySelectorAll(".pane img")) applyZoom(img);
}

/** One pane: the image in a scrollable box, then what it is. */
function pane(kind, label, url, bytes, extra) {
  const src = safeUrl(url);
  const dims = el("dd", { class: "dims" }, "loading…");
  const facts = el(
    "dl",
    { class: "facts" },
    el("div", {}, el("dt", {}, "Dimensions"), dims),
    fact("Format", src ? formatOf(src) : "unknown", { class: "format" }),
    typeof bytes === "number"
      ? fact("Size", sizeText(bytes), { class: "bytes", title: `${bytes.toLocaleString("en-US")} bytes` })
      : null,
    ...extra,
  );
  let shown;
  if (src) {
    const img = el("img", { src, alt: label, decoding: "async", referrerpolicy: "no-referrer" });
    img.classList.add("fit");
    img.addEventListener("load", () => {
      dims.textContent = `${img.naturalWidth} × ${img.naturalHeight} px`;
      applyZoom(img);
    });
    img.addEventListener("error", () => {
      img.replaceWith(el("p", { class: "slot failed" }, "The image could not be loaded."));
      dims.textContent = "–";
    });
    shown = img;
  } else {
    shown = el("p", { class: "slot failed" }, "invalid URL");
    dims.textContent = "–";
  }
  const scroller = el("div", { class: "pane-scroll", tabindex: 0, role: "region", "aria-label": `${label}, scrollable` }, shown);
  scroller.addEventListener("scroll", () => syncScroll(scroller));
  const link = src ? el("a", { href: src, target: "_blank", rel: "noopener noreferrer" }, "open in a new tab") : null;
  return el(
    "figure",
    { class: `pane ${kind}` },
    scroller,
    el("figcaption", {}, el("strong", {}, kind === "before" ? "Original" : "Compressed"), link ? " " : null, link, facts),
  );
}

/** Scrolling one zoomed pane scrolls the other to the same place, as a share of what each can scroll. */
function syncScroll(source) {
  if (syncing) return;
  syncing = true;
  for (const other of $("compare").querySelectorAll(".pane-scroll")) {
    if (other === source) continue;
    const x = source.scrollWidth - source.clientWidth;
    const y = source.scrollHeight - source.clientHeight;
    other.scrollLeft = x > 0 ? (source.scrollLeft / x) * (other.scrollWidth - other.clientWidth) : 0;
    other.scrollTop = y > 0 ? (source.scrollTop / y) * (other.scrollHeight - other.clientHeight) : 0;
  }
  requestAnimationFrame(() => {
    syncing = false;
  });
}

/**
 * Opens the comparison of one image: {name, position, count, input, output, bytesIn, bytesOut, error, reused,
 * pending}; focus goes back to `from` when it closes.
 */
export function openCompare(image, from) {
  if (!wired) setup();
  const dialog = $("compare");
  opener = from || null;
  $("compare-title").textContent = image.name;
  $("compare-which").textContent = `image ${image.position} of ${image.count}`;
  const panes = [];
  panes.push(pane("before", `${image.name}, image ${image.position}, original, full size`, image.input, image.bytesIn, []));
  let note = null;
  if (image.output) {
    const extra = [];
    if (typeof image.bytesIn === "number" && typeof image.bytesOut === "number" && image.bytesIn > 0) {
      extra.push(fact(image.bytesOut <= image.bytesIn ? "Saved" : "Larger by", savingOf(image.bytesIn, image.bytesOut), { class: "saving" }));
    }
    if (image.reused) extra.push(fact("Reused", image.reused, { class: "reused-why" }));
    panes.push(pane("after", `${image.name}, image ${image.position}, compressed, full size`, image.output, image.bytesOut, extra));
  } else if (image.error) {
    note = el("p", { class: "compare-error", role: "note" }, el("strong", {}, "Failed: "), image.error);
  } else {
    note = el("p", { class: "hint compare-error" }, image.pending ? "Not compressed yet." : "No compressed image.");
  }
  $("compare-note").replaceChildren(...(note ? [note] : []));
  const box = $("compare-panes");
  box.classList.toggle("single", panes.length === 1);
  box.replaceChildren(...panes);
  setZoom(zoom);
  if (!dialog.open) dialog.showModal();
  dialog.scrollTop = 0;
  $("compare-close").focus({ preventScroll: true });
}

function savingOf(bytesIn, bytesOut) {
  const saved = Math.abs(bytesIn - bytesOut);
  return `${sizeText(saved)} (${Math.round((100 * saved) / bytesIn)} %)`;
}

let wired = false;

/** Wires the dialog's buttons once, on first use. */
function setup() {
  wired = true;
  const dialog = $("compare");
  $("compare-close").addEventListener("click", () => dialog.close());
  for (const button of dialog.querySelectorAll("[data-zoom]")) {
    button.addEventListener("click", () => setZoom(button.dataset.zoom));
  }
  // A click on the backdrop (outside the dialog's box) closes it too.
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) {
      const r = dialog.getBoundingClientRect();
      const inside = event.clientX >= r.left && event.clientX <= r.right && event.clientY >= r.top && event.clientY <= r.bottom;
      if (!inside) dialog.close();
    }
  });
  dialog.addEventListener("close", () => {
    $("compare-panes").replaceChildren(); // stop loading full-size images nobody looks at
    $("compare-note").replaceChildren();
    const back = opener;
    opener = null;
    if (back && back.isConnected) back.focus();
  });
}
