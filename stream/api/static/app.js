// Hash router of the dashboard: #/ is the segment list, #/segments/<id> a segment.
// Each render gets a context whose alive() turns false when the user navigates
// away, so slow answers and polls of the previous page stop touching the DOM.

import { ApiError, api, apiKey, setApiKey } from "./api.js";
import { h, replace } from "./dom.js";
import { renderList } from "./list.js";
import { renderSegment } from "./segment.js";

const view = document.getElementById("view");
const panel = document.getElementById("user-panel");
let current = { dead: true };

function closePanel() {
  panel.hidden = true;
  delete panel.dataset.userId;
}

const SCOPES = ["read", "pii", "write", "admin"];

// The key's scopes go on <body> (data-can-pii, data-can-write, ...): app.css hides what it
// cannot do (elements marked data-needs="write", ...), so nobody is offered a 403.
function showScopes(me) {
  for (const s of SCOPES) {
    const can = me && (me.scopes.includes(s) || me.scopes.includes("admin"));
    document.body.toggleAttribute(`data-can-${s}`, Boolean(can));
  }
  const badge = document.getElementById("key-badge");
  replace(badge, me ? [h("span", { id: "key-name" }, me.name), " · ",
    h("span", { id: "key-scopes" }, me.scopes.join(", ")), " ",
    h("button", { type: "button", class: "link", id: "sign-out" }, "Sign out")] : []);
  if (me) document.getElementById("sign-out").addEventListener("click", () => { setApiKey(null); start(); });
}

function signIn(message) {
  current.dead = true;
  showScopes(null);
  document.body.dataset.page = "sign-in";
  const input = h("input", { id: "key-input", type: "password", autocomplete: "off", placeholder: "lsk_…",
    "aria-label": "API key" });
  const error = h("p", { class: "error", id: "key-error", role: "alert" }, message || "");
  const form = h("form", { id: "sign-in", class: "card" },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "Paste an API key (make one with ", h("code", {}, "stream keys create"),
      "). It stays in this tab only."),
    input, h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Sign in")), error);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    setApiKey(input.value.trim());
    start();
  });
  replace(view, form);
  input.focus();
}

async function start() {
  const hashKey = location.hash.match(/^#key=([^&]+)/);
  if (hashKey) {
    setApiKey(decodeURIComponent(hashKey[1]));
    history.replaceState(null, "", `${location.pathname}#/`);  // the key leaves the address bar
  }
  if (!apiKey()) return signIn("");
  try {
    showScopes(await api("/auth/me"));
  } catch (err) {
    setApiKey(null);
    return signIn(err instanceof ApiError && err.status === 401 ? "That key was refused." : String(err.detail || err));
  }
  route();
}

window.addEventListener("api-key-refused", () => { setApiKey(null); signIn("The key was refused (revoked?)."); });

function route() {
  if (!apiKey()) return signIn("");
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
window.addEventListener("hashchange", () => { if (!location.hash.startsWith("#key=")) route(); else start(); });
start();
