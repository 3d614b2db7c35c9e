// Thin client for the JSON API: one place that turns a 4xx/5xx into an
// ApiError carrying the server's `detail`, so every view can show it inline.

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

// The API key lives in this tab's sessionStorage only (DESIGN "Access"): it arrives in the URL's
// fragment (never sent to the server) or is pasted into the sign-in form.
const KEY = "live-segments.key";

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

export async function api(path, { method = "GET", json, body, headers = {} } = {}) {
  const init = { method, headers: { Accept: "application/json", ...authHeaders(), ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, `network error: ${err.message}`);
  }
  if (resp.status === 204) return null;
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const detail = data && data.detail !== undefined ? data.detail : text || resp.statusText;
    if (resp.status === 401) window.dispatchEvent(new CustomEvent("api-key-refused", { detail }));
    throw new ApiError(resp.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return data;
}

// A download that needs the key: fetched with it, then saved from a blob URL.
export async function download(path, filename) {
  let resp;
  try {
    resp = await fetch(path, { headers: authHeaders() });
  } catch (err) {
    throw new ApiError(0, `network error: ${err.message}`);
  }
  if (!resp.ok) {
    let detail = resp.statusText;
    try { detail = (await resp.json()).detail; } catch { /* not JSON */ }
    throw new ApiError(resp.status, String(detail));
  }
  const url = URL.createObjectURL(await resp.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export const seg = (id) => `/segments/${encodeURIComponent(id)}`;

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}
