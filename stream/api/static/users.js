// Sample users of a segment, and the side panel that opens any user's profile and, opened from a
// segment's page, why the user is in or out of that segment and when time alone will change it.

import { ApiError, api, seg } from "./api.js";
import { CHANNELS, CHANNEL_LABELS, errorBox, h, replace, showError, when } from "./dom.js";

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
      replace(list, data.users.length ? data.users.map((u) => item(u, sid, ctx)) :
        h("li", { class: "muted", testid: "no-sample" }, "No members yet."));
    } catch (err) {
      if (ctx.alive()) showError(error, err instanceof ApiError ? err.detail : String(err));
    }
  }
  reload.addEventListener("click", load);
  await load();
}

function item(user, sid, ctx) {
  const facts = SUMMARY_FIELDS.map((f) => user.profile[f]).filter((v) => v !== undefined && v !== "");
  return h("li", {},
    h("button", { type: "button", class: "user-item", testid: "sample-user", dataset: { userId: user.user_id },
      onclick: () => openUser(user.user_id, ctx, sid) },
    h("span", { class: "user-id" }, user.user_id),
    h("span", { class: "muted small" }, facts.join(" · ")),
    user.blacklisted ? h("span", { class: "badge danger" }, "blacklisted") : null));
}

/** Opens the user panel; segment ids are shown with their names when the list knows them. With `sid`
 * (the segment being viewed) it also explains the user's membership of that segment. */
export async function openUser(userId, ctx, sid) {
  const panel = document.getElementById("user-panel");
  const content = document.getElementById("user-panel-body");
  const error = errorBox("user-error");
  replace(content, h("p", { class: "muted" }, "Loading…"));
  panel.hidden = false;
  panel.dataset.userId = userId;
  try {
    const [user, listing, explained] = await Promise.all([
      api(`/users/${encodeURIComponent(userId)}`),
      api("/segments?include_hidden=true").catch(() => ({ segments: [] })),
      // A failed explanation leaves the rest of the panel standing, with its reason in place.
      sid ? api(`${seg(sid)}/users/${encodeURIComponent(userId)}/explain`).catch((err) => ({ failed: err })) : null,
    ]);
    if (!ctx.alive() || panel.dataset.userId !== userId) return;
    const names = Object.fromEntries(listing.segments.map((s) => [s.id, s.name]));
    replace(content, userView(user, names, explained && explainView(explained, names[sid] || sid)));
  } catch (err) {
    replace(content, error);
    showError(error, err instanceof ApiError ? err.detail : String(err));
  }
}

function userView(user, names, explanation) {
  const props = Object.keys(user.profile).sort();
  return h("div", { testid: "user-details" },
    h("h2", { id: "user-panel-title" }, user.profile.name ? String(user.profile.name) : user.user_id),
    h("p", { class: "muted small" }, "User id ", h("code", { testid: "user-id" }, user.user_id),
      user.blacklisted ? h("span", { class: "badge danger", testid: "user-blacklisted" }, "blacklisted") : null),
    explanation,
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

// -- why in or out ---------------------------------------------------------------------------------

const AGGREGATES = ["sum", "min", "max", "avg", "distinct"];

function amount(v) {
  return Number(v).toLocaleString("en-US", { maximumFractionDigits: 2 });
}

/** The short evidence of a condition, for the sentence: "2 events, sum 110.5"; a profile
 * condition's actual value only when it fails (when it holds, its summary already says it). */
function evidence(node) {
  if (node.type === "not") return node.children ? evidence(node.children[0]) : "";
  const parts = [];
  if (node.type === "profile" && !node.value) {
    parts.push(node.actual === undefined || node.actual === null ? "not set" : `it is ${node.actual}`);
  }
  if (node.count !== undefined) {
    parts.push(node.type === "sequence" ? `${node.count} found` : `${node.count} event${node.count === 1 ? "" : "s"}`);
  }
  for (const k of AGGREGATES) if (node[k] !== undefined) parts.push(`${k} ${node[k] === null ? "none" : amount(node[k])}`);
  return parts.length ? ` (${parts.join(", ")})` : "";
}

/** The conditions that decide a node's value: all of a true "all", the false ones of a false "all", the
 * first true child of a true "any", every child of a false "any"; any other node speaks for itself. */
function reasons(node) {
  const kids = node.children || [];
  if (node.type === "all") return (node.value ? kids : kids.filter((c) => !c.value)).flatMap(reasons);
  if (node.type === "any") return node.value ? reasons(kids.find((c) => c.value)) : kids.flatMap(reasons);
  return [node.value ? `${node.summary}${evidence(node)}` : `“${node.summary}” does not hold${evidence(node)}`];
}

function verdict(x) {
  if (!x.rule) return x.member ? "In because they were uploaded to this list." : "Out: not uploaded to this list.";
  const why = reasons(x.rule).join("; and ");
  if (x.matches) return `In because ${why}${x.next_change_at ? `; leaves on ${when(x.next_change_at)}` : ""}.`;
  return `Out because ${why}${x.next_change_at ? `; enters on ${when(x.next_change_at)}` : ""}.`;
}

function nodeFacts(node) {
  const facts = [];
  if (node.type === "profile") facts.push(node.actual === undefined || node.actual === null ? "not set" : `value: ${node.actual}`);
  if (node.count !== undefined) facts.push(`count: ${node.count}`);
  for (const k of AGGREGATES) if (node[k] !== undefined) facts.push(`${k}: ${node[k] === null ? "none" : amount(node[k])}`);
  if (node.window) {
    const { from, to } = node.window;
    facts.push(`window: ${from ? when(from) : "any time"} → ${to ? when(to) : "now"}`);
  }
  if (node.found !== undefined) facts.push(node.found ? `found at ${node.found.map(when).join(" → ")}` : "not found");
  return facts;
}

function nodeView(node) {
  const facts = nodeFacts(node);
  return h("li", { class: "explain-node", testid: "explain-node", dataset: { type: node.type, value: String(node.value) } },
    h("span", { class: node.value ? "mark yes" : "mark no", "aria-label": node.value ? "true" : "false" },
      node.value ? "✓" : "✗"), " ",
    h("span", { class: "explain-summary" }, node.summary),
    facts.length ? h("div", { class: "small muted explain-facts", testid: "explain-facts" }, facts.join(" · ")) : null,
    node.children ? h("ul", { class: "explain-tree" }, node.children.map(nodeView)) : null);
}

function explainView(x, name) {
  if (x.failed) {
    return h("p", { class: "error", testid: "explain-error", role: "alert" },
      `Why in or out of ${name}: ${x.failed instanceof ApiError ? x.failed.detail : String(x.failed)}`);
  }
  return h("section", { class: "explain", testid: "user-explain", dataset: { member: String(x.member), matches: String(x.matches) } },
    h("h3", {}, `${name}: ${x.member ? "in" : "out"}`),
    h("p", { class: "explain-verdict", testid: "explain-verdict" }, verdict(x)),
    x.member !== x.matches ? h("p", { class: "note small", testid: "explain-catching-up" },
      `The rule says ${x.matches ? "in" : "out"} now; the stored membership catches up within seconds.`) : null,
    x.rule ? h("ul", { class: "explain-tree root", testid: "explain-tree" }, nodeView(x.rule)) : null);
}
