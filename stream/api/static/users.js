// Sample users of a segment, and the side panel that opens any user's profile.

import { ApiError, api, seg } from "./api.js";
import { CHANNELS, CHANNEL_LABELS, errorBox, h, replace, showError } from "./dom.js";

const SUMMARY_FIELDS = ["name", "email", "phone", "city"];

export async function renderSample(container, sid, ctx) {
  const list = h("ul", { class: "user-list", id: "sample-users" });
  const error = errorBox("sample-error");
  const reload = h("button", { type: "button", id: "sample-reload", class: "link" }, "Another sample");
  replace(container, h("div", { class: "toolbar" }, h("span", { class: "muted small" }, "A random sample of members"), reload),
    error, list);

  async function load() {
    try {
      const data = await api(`${seg(sid)}/users?limit=10`);
      if (!ctx.alive()) return;
      showError(error, "");
      replace(list, data.users.length ? data.users.map((u) => item(u, ctx)) :
        h("li", { class: "muted", testid: "no-sample" }, "No members yet."));
    } catch (err) {
      if (ctx.alive()) showError(error, err instanceof ApiError ? err.detail : String(err));
    }
  }
  reload.addEventListener("click", load);
  await load();
}

function item(user, ctx) {
  const facts = SUMMARY_FIELDS.map((f) => user.profile[f]).filter((v) => v !== undefined && v !== "");
  return h("li", {},
    h("button", { type: "button", class: "user-item", testid: "sample-user", dataset: { userId: user.user_id },
      onclick: () => openUser(user.user_id, ctx) },
    h("span", { class: "user-id" }, user.user_id),
    h("span", { class: "muted small" }, facts.join(" · ")),
    user.blacklisted ? h("span", { class: "badge danger" }, "blacklisted") : null));
}

/** Opens the user panel; segment ids are shown with their names when the list knows them. */
export async function openUser(userId, ctx) {
  const panel = document.getElementById("user-panel");
  const content = document.getElementById("user-panel-body");
  const error = errorBox("user-error");
  replace(content, h("p", { class: "muted" }, "Loading…"));
  panel.hidden = false;
  panel.dataset.userId = userId;
  try {
    const [user, listing] = await Promise.all([
      api(`/users/${encodeURIComponent(userId)}`),
      api("/segments?include_hidden=true").catch(() => ({ segments: [] })),
    ]);
    if (!ctx.alive() || panel.dataset.userId !== userId) return;
    const names = Object.fromEntries(listing.segments.map((s) => [s.id, s.name]));
    replace(content, userView(user, names));
  } catch (err) {
    replace(content, error);
    showError(error, err instanceof ApiError ? err.detail : String(err));
  }
}

function userView(user, names) {
  const props = Object.keys(user.profile).sort();
  return h("div", { testid: "user-details" },
    h("h2", { id: "user-panel-title" }, user.profile.name ? String(user.profile.name) : user.user_id),
    h("p", { class: "muted small" }, "User id ", h("code", { testid: "user-id" }, user.user_id),
      user.blacklisted ? h("span", { class: "badge danger", testid: "user-blacklisted" }, "blacklisted") : null),
    h("h3", {}, "Reachability"),
    h("ul", { class: "chips", testid: "user-reachability" }, CHANNELS.map((c) =>
      h("li", { class: user.reachability[c] ? "chip on" : "chip off", dataset: { channel: c } },
        `${user.reachability[c] ? "✓" : "✕"} ${CHANNEL_LABELS[c]}`))),
    h("h3", {}, "Profile"),
    props.length ? h("table", { class: "table compact", testid: "user-profile" },
      h("tbody", {}, props.map((k) => h("tr", {}, h("th", {}, k), h("td", {}, String(user.profile[k]))))))
      : h("p", { class: "muted" }, "No profile properties."),
    h("h3", {}, "Segments"),
    user.segments.length ? h("ul", { class: "plain", testid: "user-segments" }, user.segments.map((id) =>
      h("li", {}, h("a", { href: `#/segments/${encodeURIComponent(id)}` }, names[id] || id))))
      : h("p", { class: "muted" }, "In no segment."));
}
