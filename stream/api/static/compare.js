// "Compare with another segment": how many members two segments share. The estimate comes from the
// two samples (fast at any size, with 95% bounds); "Count exactly" walks the member sets, which is
// what a small overlap of a big segment needs when its bounds come back wide.

import { ApiError, api, query, seg } from "./api.js";
import { card, errorBox, h, num, replace, showError } from "./dom.js";

export function compareSection(segment, ctx) {
  const select = h("select", { id: "compare-with", "aria-label": "Segment to compare with" },
    h("option", { value: "" }, "Choose a segment…"));
  const exactBtn = h("button", { type: "button", id: "compare-exact", disabled: true }, "Count exactly");
  const result = h("div", { id: "compare-result", "aria-live": "polite" });
  const error = errorBox("compare-error");
  let names = {};
  let asked = 0;  // answers to an earlier choice are dropped, so a slow one never overwrites a newer one

  api("/segments").then((listing) => {
    if (!ctx.alive()) return;
    const others = listing.segments.filter((s) => s.id !== segment.id);
    names = Object.fromEntries(listing.segments.map((s) => [s.id, s.name]));
    select.append(...others.map((s) => h("option", { value: s.id }, s.name)));
    if (!others.length) replace(result, h("p", { class: "muted", testid: "compare-none" }, "No other segment to compare with."));
  }).catch((err) => showError(error, err instanceof ApiError ? err.detail : String(err)));

  async function load(mode) {
    const other = select.value;
    const ticket = ++asked;
    showError(error, "");
    exactBtn.disabled = !other;
    if (!other) {
      replace(result);
      return;
    }
    replace(result, h("p", { class: "muted" }, mode === "exact" ? "Counting exactly…" : "Estimating…"));
    if (mode === "exact") exactBtn.disabled = true;
    try {
      const data = await api(`${seg(segment.id)}/overlap${query({ with: other, mode })}`);
      if (!ctx.alive() || ticket !== asked) return;
      replace(result, overlapView(data, segment.name, names[other] || other));
    } catch (err) {
      if (!ctx.alive() || ticket !== asked) return;
      replace(result);
      showError(error, err instanceof ApiError ? err.detail : String(err));
    } finally {
      if (ticket === asked) exactBtn.disabled = !select.value;
    }
  }

  select.addEventListener("change", () => load("estimate"));
  exactBtn.addEventListener("click", () => load("exact"));
  return card("Compare with another segment", { id: "compare", class: "card wide" },
    h("div", { class: "toolbar" }, select, exactBtn), error, result);
}

function value(v) {
  return typeof v === "number" ? v : v.estimate;
}

function bounds(v) {
  if (typeof v === "number") return "exact count";
  const lo = Math.round(v.lower_95);
  const hi = Math.round(v.upper_95);
  return lo === hi ? "exact" : `95%: ${num(lo)} – ${num(hi)}`;
}

function tile(label, v, testid) {
  return h("div", { class: "tile" }, h("div", { class: "tile-label" }, label),
    h("div", { class: "tile-value", testid }, num(value(v))),
    h("div", { class: "small muted", testid: `${testid}-bounds` }, bounds(v)));
}

// One bar split in three (only this · both · only that), widths set through the CSSOM: a style
// attribute would be refused by the page's strict style-src.
function split(data) {
  const parts = [["only_segment", "only-this"], ["both", "both"], ["only_with", "only-that"]];
  const total = parts.reduce((sum, [k]) => sum + value(data[k]), 0);
  const bar = h("div", { class: "venn-bar", role: "img",
    "aria-label": parts.map(([k, name]) => `${name} ${num(value(data[k]))}`).join(", ") });
  for (const [k, name] of parts) {
    const piece = h("div", { class: `venn-part venn-${name}` });
    piece.style.width = `${total > 0 ? (100 * value(data[k])) / total : 0}%`;
    bar.append(piece);
  }
  return bar;
}

function overlapView(data, thisName, thatName) {
  return h("div", { testid: `compare-${data.mode}`, dataset: { mode: data.mode, with: data.with } },
    h("div", { class: "tiles" },
      tile(`Only in ${thisName}`, data.only_segment, "compare-only-segment"),
      tile("In both", data.both, "compare-both"),
      tile(`Only in ${thatName}`, data.only_with, "compare-only-with")),
    split(data),
    h("p", { class: "small muted" }, data.mode === "exact"
      ? "Counted exactly from the two member sets."
      : "Estimated from the two segments' samples (exact while both are small)."));
}
