// The product table: one row per product with before/after thumbnails and its errors. Rows are rebuilt only when
// their product changed, so polling every second does not reload images or move the keyboard focus needlessly.

import { $, el, safeUrl, TERMINAL } from "./api.js";

export const PAGE_SIZE = 50;

const rowsBySerial = new Map(); // serial -> {row, key}; unchanged rows (and their loaded images) are left alone

function failedPositions(errors) {
  const positions = new Set();
  for (const message of errors) {
    const match = /^image (\d+) \(/.exec(message);
    if (match) positions.add(Number(match[1]) - 1);
  }
  return positions;
}

function thumbnail(url, alt) {
  const src = safeUrl(url);
  if (!src) return el("span", { class: "slot" }, "invalid URL");
  const img = el("img", {
    src,
    alt,
    width: 72,
    height: 72,
    loading: "lazy",
    decoding: "async",
    referrerpolicy: "no-referrer",
  });
  img.addEventListener("error", () => img.replaceWith(el("span", { class: "slot" }, "no preview")), { once: true });
  return el("a", { href: src, target: "_blank", rel: "noopener noreferrer" }, img);
}

/** "1.2 MB (68 %)": what compression saved, from the status API's byte totals. */
export function savedText(bytesIn, bytesOut) {
  if (!bytesIn) return "–";
  const saved = Math.max(bytesIn - bytesOut, 0);
  const units = [["GB", 1e9], ["MB", 1e6], ["kB", 1e3]];
  const [unit, size] = units.find(([, s]) => saved >= s) || ["bytes", 1];
  const amount = unit === "bytes" ? String(saved) : (saved / size).toFixed(1);
  return `${amount} ${unit} (${Math.round((100 * saved) / bytesIn)} %)`;
}

function productRow(product, finished) {
  const failed = failedPositions(product.errors);
  const name = product.product_name;
  const pairs = product.input_image_urls.map((input, i) => {
    const output = product.output_image_urls[i];
    let after;
    if (output) after = thumbnail(output, `${name}, image ${i + 1}, compressed`);
    else if (failed.has(i) || finished) after = el("span", { class: "slot failed" }, "failed");
    else after = el("span", { class: "slot pending" }, "pending");
    return el(
      "li",
      { class: "pair" },
      thumbnail(input, `${name}, image ${i + 1}, original`),
      el("span", { class: "arrow", "aria-hidden": "true" }, "→"),
      after,
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
      product.bytes_in ? el("p", { class: "hint saved" }, `saved ${savedText(product.bytes_in, product.bytes_out)}`) : null,
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
