// Segment list: search by name, show hidden ones, and create a segment.

import { ApiError, api, query } from "./api.js";
import { card, errorBox, h, kindBadge, num, replace, showError, when } from "./dom.js";

const EXAMPLE_RULE = {
  all: [
    { profile: { prop: "city", op: "eq", value: "Pune" } },
    { event: { name: "Charged", count: { op: "gte", value: 2 }, within_days: 30 } },
  ],
};

export function renderList(view, ctx) {
  const search = h("input", {
    id: "segment-search", type: "search", placeholder: "Search segments by name", "aria-label": "Search segments",
    autocomplete: "off",
  });
  const showHidden = h("input", { id: "show-hidden", type: "checkbox" });
  const status = h("span", { class: "muted", id: "list-status" });
  const body = h("tbody", { id: "segment-rows" });
  const listError = errorBox("list-error");
  const form = createForm(ctx);
  const toggleForm = h("button", {
    id: "open-create", class: "primary", type: "button", dataset: { needs: "write" },
    onclick: () => { form.hidden = !form.hidden; if (!form.hidden) form.querySelector("input").focus(); },
  }, "Create segment");

  replace(view,
    h("div", { class: "page-head" }, h("h1", {}, "Segments"), toggleForm),
    form,
    card("All segments", { id: "segment-list" },
      h("div", { class: "toolbar" }, search,
        h("label", { class: "check" }, showHidden, " Show hidden"), status),
      listError,
      h("table", { class: "table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Kind"), h("th", { class: "num" }, "Estimated size"),
          h("th", {}, "Created"))),
        body)));

  // Responses can arrive out of order while typing; only the latest request may render.
  let latest = 0;
  async function load() {
    const mine = ++latest;
    status.textContent = "Loading…";
    try {
      const data = await api(`/segments${query({ q: search.value.trim(), include_hidden: showHidden.checked || "" })}`);
      if (mine !== latest || !ctx.alive()) return;
      showError(listError, "");
      const rows = data.segments.map(row);
      replace(body, rows.length ? rows : h("tr", { class: "empty" },
        h("td", { colspan: 4, testid: "no-segments" }, search.value.trim() ? "No segment matches this search." :
          "No segments yet: create one above.")));
      status.textContent = `${data.segments.length} segment${data.segments.length === 1 ? "" : "s"}`;
    } catch (err) {
      if (mine !== latest || !ctx.alive()) return;
      status.textContent = "";
      showError(listError, err instanceof ApiError ? err.detail : String(err));
    }
  }

  let timer = 0;
  search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(load, 200); });
  showHidden.addEventListener("change", load);
  load();
}

function row(s) {
  const link = h("a", { href: `#/segments/${encodeURIComponent(s.id)}`, testid: "segment-link" }, s.name);
  return h("tr", { testid: "segment-row", dataset: { id: s.id }, class: s.hidden ? "is-hidden" : "" },
    h("td", {}, link, s.hidden ? h("span", { class: "badge muted-badge", testid: "hidden-badge" }, "hidden") : null),
    h("td", {}, kindBadge(s.kind)),
    h("td", { class: "num", testid: "segment-size" }, num(s.estimated_size)),
    h("td", { class: "muted" }, when(s.created_at)));
}

function createForm(ctx) {
  const name = h("input", { id: "create-name", name: "name", required: true, maxlength: 200, placeholder: "e.g. Pune shoppers" });
  const kind = h("select", { id: "create-kind", name: "kind" },
    h("option", { value: "live" }, "Live (events from now on)"),
    h("option", { value: "past_behavior" }, "Past behavior (includes history)"),
    h("option", { value: "custom_list" }, "Custom list (uploaded CSV)"));
  const rule = h("textarea", { id: "create-rule", name: "rule", rows: 10, spellcheck: "false" });
  rule.value = JSON.stringify(EXAMPLE_RULE, null, 2);
  const ruleField = h("label", { class: "field", id: "create-rule-field" }, "Rule (JSON)", rule);
  const error = errorBox("create-error");
  const submit = h("button", { type: "submit", class: "primary", id: "create-submit" }, "Create");
  kind.addEventListener("change", () => { ruleField.hidden = kind.value === "custom_list"; });

  const form = h("form", { id: "create-form", class: "card create", hidden: true, novalidate: true },
    h("h2", {}, "New segment"),
    h("div", { class: "create-grid" },
      h("div", { class: "create-fields" },
        h("label", { class: "field" }, "Name", name),
        h("label", { class: "field" }, "Kind", kind),
        ruleField,
        h("div", { class: "actions" }, submit,
          h("button", { type: "button", onclick: () => { form.hidden = true; showError(error, ""); } }, "Cancel"))),
      h("div", { class: "create-side" }, error,
        h("p", { class: "muted small" }, "Combine ", h("code", {}, "all"), ", ", h("code", {}, "any"), " and ",
          h("code", {}, "not"), " over ", h("code", {}, "profile"), ", ", h("code", {}, "event"), " and ",
          h("code", {}, "reachable"), " conditions. The server checks the rule and names the part it cannot use."))));

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    showError(error, "");
    const body = { name: name.value, kind: kind.value };
    if (kind.value !== "custom_list") {
      try {
        body.rule = JSON.parse(rule.value);
      } catch (err) {
        showError(error, `Rule is not valid JSON: ${err.message}`);
        return;
      }
    }
    submit.disabled = true;
    try {
      const created = await api("/segments", { method: "POST", json: body });
      if (ctx.alive()) location.hash = `#/segments/${encodeURIComponent(created.id)}`;
    } catch (err) {
      showError(error, err instanceof ApiError ? `${err.status === 422 ? "Invalid segment" : `Error ${err.status}`}: ${err.detail}` : String(err));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}
