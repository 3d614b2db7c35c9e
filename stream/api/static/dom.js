// Tiny DOM helpers. Everything the server sends (names, profile values) goes
// in as text nodes, never as HTML, so a user's "name" cannot inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "testid") el.dataset.testid = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = Boolean(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const CHANNELS = ["email", "sms", "whatsapp", "push", "web_push"];
export const CHANNEL_LABELS = { email: "Email", sms: "SMS", whatsapp: "WhatsApp", push: "Push", web_push: "Web push" };
export const KIND_LABELS = { live: "Live", past_behavior: "Past behavior", custom_list: "Custom list" };

export function num(n) {
  return Math.round(Number(n)).toLocaleString("en-US");
}

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" });
}

export function kindBadge(kind) {
  return h("span", { class: `badge kind-${kind}`, testid: "kind" }, KIND_LABELS[kind] || kind);
}

export function errorBox(id) {
  return h("div", { class: "error", id, role: "alert", hidden: true });
}

export function showError(box, message) {
  box.textContent = message || "";
  box.hidden = !message;
}

export function card(title, attrs, ...children) {
  return h("section", { class: "card", ...attrs }, h("h2", {}, title), ...children);
}
