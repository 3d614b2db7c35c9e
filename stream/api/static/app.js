// Hash router of the dashboard: #/ is the segment list, #/segments/<id> a segment.
// Each render gets a context whose alive() turns false when the user navigates
// away, so slow answers and polls of the previous page stop touching the DOM.

import { renderList } from "./list.js";
import { renderSegment } from "./segment.js";

const view = document.getElementById("view");
const panel = document.getElementById("user-panel");
let current = { dead: true };

function closePanel() {
  panel.hidden = true;
  delete panel.dataset.userId;
}

function route() {
  current.dead = true;
  const ctx = { dead: false, alive() { return !this.dead; } };
  current = ctx;
  closePanel();
  const match = location.hash.match(/^#\/segments\/(.+)$/);
  document.body.dataset.page = match ? "segment" : "list";
  if (match) {
    renderSegment(view, decodeURIComponent(match[1]), ctx);
  } else {
    renderList(view, ctx);
  }
  window.scrollTo(0, 0);
}

document.getElementById("user-panel-close").addEventListener("click", closePanel);
document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && !panel.hidden) closePanel(); });
window.addEventListener("hashchange", route);
route();
