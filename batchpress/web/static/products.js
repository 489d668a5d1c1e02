// The product table: one row per product with before/after thumbnails and its errors. Rows are rebuilt only when
// their product changed, so polling every second does not reload images or move the keyboard focus needlessly.

import { $, el, safeUrl, TERMINAL } from "./api.js";
import { openCompare } from "./compare.js";

export const PAGE_SIZE = 50;

const rowsBySerial = new Map(); // serial -> {row, key}; unchanged rows (and their loaded images) are left alone

/** Position (from 0) -> the error of that image, from messages such as "image 2 (https://...): not an image". */
function failedPositions(errors) {
  const positions = new Map();
  for (const message of errors) {
    const match = /^image (\d+) \(/.exec(message);
    if (match && !positions.has(Number(match[1]) - 1)) positions.set(Number(match[1]) - 1, message);
  }
  return positions;
}

/** The thumbnail's picture: the server's small preview where it made one (a few kB, not the photo), else the image. */
function thumbnailImage(href, preview, alt) {
  const img = el("img", {
    src: (preview && safeUrl(preview)) || href,
    alt,
    width: 72,
    height: 72,
    loading: "lazy",
    decoding: "async",
    referrerpolicy: "no-referrer",
  });
  img.addEventListener("error", function fallBack() {
    // A preview that cannot be had (deleted, a proxy in the way) still leaves the image itself to show.
    if (img.getAttribute("src") !== href) {
      img.setAttribute("src", href);
      return;
    }
    img.removeEventListener("error", fallBack);
    img.replaceWith(el("span", { class: "slot" }, "no preview"));
  });
  return img;
}

/** A thumbnail whose click opens the comparison; a link still, so a middle or modified click opens the file. */
function thumbnail(url, preview, alt, compare, waiting = false) {
  const href = safeUrl(url);
  if (!href) return el("span", { class: "slot" }, "invalid URL");
  // A pending input gets its preview with its output: the whole photo is not downloaded for 72 px meanwhile.
  const shown = waiting ? el("span", { class: "slot pending" }, "pending") : thumbnailImage(href, preview, alt);
  const link = el("a", { href, target: "_blank", rel: "noopener noreferrer", class: "thumb" }, shown);
  if (compare) {
    link.setAttribute("aria-haspopup", "dialog");
    link.title = "Compare before and after";
    link.addEventListener("click", (event) => {
      if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      openCompare(compare(), link);
    });
  }
  return link;
}

/** "1.2 MB": decimal units, as browsers and file managers show sizes. */
export function sizeText(bytes) {
  const units = [["GB", 1e9], ["MB", 1e6], ["kB", 1e3]];
  const [unit, size] = units.find(([, s]) => bytes >= s) || ["bytes", 1];
  return unit === "bytes" ? `${bytes} bytes` : `${(bytes / size).toFixed(1)} ${unit}`;
}

/** "1.2 MB (68 %)": what compression saved; a minus sign where outputs grew (a conversion or resize asked for). */
export function savedText(bytesIn, bytesOut) {
  if (!bytesIn) return "–";
  const saved = bytesIn - bytesOut;
  const sign = saved < 0 ? "−" : "";
  return `${sign}${sizeText(Math.abs(saved))} (${sign}${Math.round((100 * Math.abs(saved)) / bytesIn)} %)`;
}

/** "1.5 MB → 321.0 kB": sizes before and after; "" until there is an output to compare. */
export function sizesText(bytesIn, bytesOut) {
  if (!bytesIn || bytesOut === null || bytesOut === undefined) return "";
  return `${sizeText(bytesIn)} → ${sizeText(bytesOut)}`;
}

/** "saved 1.2 MB (68 %)", or "250 bytes larger (25 %)" where the outputs grew. */
function savingText(bytesIn, bytesOut) {
  const saved = bytesIn - bytesOut;
  const percent = Math.round((100 * Math.abs(saved)) / bytesIn);
  return saved >= 0 ? `saved ${sizeText(saved)} (${percent} %)` : `${sizeText(-saved)} larger (${percent} %)`;
}

/** "−78 %": one image's change in size, the way a reader compares before and after. */
function changeText(bytesIn, bytesOut) {
  const change = Math.round((100 * (bytesOut - bytesIn)) / bytesIn);
  return change > 0 ? `+${change} %` : change < 0 ? `−${-change} %` : "±0 %";
}

function imageSizes(bytesIn, bytesOut) {
  const sizes = sizesText(bytesIn, bytesOut);
  if (!sizes) return null;
  // Exact figures on hover: the text rounds them.
  const exact = `${bytesIn.toLocaleString("en-US")} bytes → ${bytesOut.toLocaleString("en-US")} bytes`;
  return el("span", { class: "sizes", title: exact }, `${sizes} (${changeText(bytesIn, bytesOut)})`);
}

/** Why an image was not compressed again, e.g. "reused: same content"; null for one compressed for itself. */
function reusedNote(why) {
  if (!why) return null;
  return el("span", { class: "reused", title: "not compressed again: this output already existed" }, `reused: ${why}`);
}

function productRow(product, finished) {
  const failed = failedPositions(product.errors);
  const name = product.product_name;
  // Servers from before per-image sizes (or reuse) send no lists: their products show thumbnails only.
  const sizesIn = product.input_image_bytes || [];
  const sizesOut = product.output_image_bytes || [];
  const reused = product.reused || [];
  // Servers from before previews send no preview lists: their thumbnails load the images themselves.
  const previewsIn = product.input_preview_urls || [];
  const previewsOut = product.output_preview_urls || [];
  const makesPreviews = Array.isArray(product.input_preview_urls);
  const count = product.input_image_urls.length;
  const pairs = product.input_image_urls.map((input, i) => {
    const output = product.output_image_urls[i];
    const pending = !output && !finished && !failed.has(i);
    const compare = () => ({
      name,
      position: i + 1,
      count,
      input,
      output: output || null,
      bytesIn: sizesIn[i],
      bytesOut: sizesOut[i],
      reused: reused[i] || null,
      error: failed.get(i) || (output || !finished ? null : "no compressed image was made"),
      pending,
    });
    let after;
    if (output) after = thumbnail(output, previewsOut[i], `${name}, image ${i + 1}, compressed`, compare);
    else if (failed.has(i) || finished) after = el("span", { class: "slot failed" }, "failed");
    else after = el("span", { class: "slot pending" }, "pending");
    return el(
      "li",
      { class: "pair" },
      thumbnail(input, previewsIn[i], `${name}, image ${i + 1}, original`, compare, pending && makesPreviews),
      el("span", { class: "arrow", "aria-hidden": "true" }, "→"),
      after,
      imageSizes(sizesIn[i], sizesOut[i]),
      reusedNote(reused[i]),
    );
  });
  const errors = product.errors.length
    ? el("ul", { class: "errors" }, ...product.errors.map((e) => el("li", {}, e)))
    : el("span", { class: "hint" }, "none");
  return el(
    "tr",
    { "data-serial": product.serial_number },
    el("td", { class: "serial" }, product.serial_number),
    el("th", { scope: "row", class: "name" }, name),
    el(
      "td",
      {},
      el("ul", { class: "pairs" }, ...pairs),
      product.bytes_in
        ? el(
            "p",
            { class: "hint saved" },
            `${sizesText(product.bytes_in, product.bytes_out)}, ${savingText(product.bytes_in, product.bytes_out)}`,
          )
        : null,
    ),
    el("td", {}, errors),
  );
}

export function renderProducts(data) {
  const finished = TERMINAL.has(data.status);
  const body = $("product-rows");
  const wanted = [];
  for (const product of data.products) {
    const key = JSON.stringify([product, finished]);
    let entry = rowsBySerial.get(product.serial_number);
    if (!entry || entry.key !== key) {
      const row = productRow(product, finished);
      if (entry) entry.row.replaceWith(row);
      entry = { row, key };
      rowsBySerial.set(product.serial_number, entry);
    }
    wanted.push(entry.row);
  }
  const inOrder = wanted.length === body.children.length && wanted.every((row, i) => body.children[i] === row);
  if (!inOrder) {
    body.replaceChildren(...wanted);
    for (const [serial, entry] of rowsBySerial) if (!wanted.includes(entry.row)) rowsBySerial.delete(serial);
  }

  const first = data.products.length ? data.offset + 1 : 0;
  const last = data.offset + data.products.length;
  $("products-caption").textContent =
    data.total_products > data.products.length
      ? `Products ${first}–${last} of ${data.total_products}`
      : `Products (${data.total_products})`;
  $("pager").hidden = data.offset === 0 && last >= data.total_products;
  $("prev-page").disabled = data.offset === 0;
  $("next-page").disabled = last >= data.total_products;
}

export function clearProducts() {
  $("product-rows").replaceChildren();
  rowsBySerial.clear();
}
