// One segment's page. Rule segments (live, past behavior) show their rule;
// custom lists show who uses them and take CSV uploads. Both show the trend,
// insights, the overlap with another segment, sample users and a CSV export
// with a field picker.

import { ApiError, api, download, query, seg } from "./api.js";
import { CHANNELS, card, errorBox, h, kindBadge, num, replace, showError, when } from "./dom.js";
import { compareSection } from "./compare.js";
import { renderInsights } from "./insights.js";
import { renderTrend } from "./trend.js";
import { renderSample } from "./users.js";

const PROFILE_FIELDS = ["name", "email", "phone", "city", "age"];
const DEFAULT_FIELDS = new Set(["user_id", "name", "email"]);
// The export route's own rule for a field name, checked here so a typo shows inline instead of downloading an error.
const FIELD_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

export async function renderSegment(view, sid, ctx) {
  replace(view, h("p", { class: "muted" }, "Loading…"));
  let segment;
  try {
    segment = await api(seg(sid));
  } catch (err) {
    if (!ctx.alive()) return;
    replace(view, h("p", { class: "error", id: "segment-missing", role: "alert" },
      err instanceof ApiError ? err.detail : String(err)), h("a", { href: "#/" }, "← Back to segments"));
    return;
  }
  if (!ctx.alive()) return;
  const isList = segment.kind === "custom_list";
  const trend = h("div", { id: "trend-body" }, h("p", { class: "muted" }, "Loading…"));
  const insights = h("div", { id: "insights" });
  const sample = h("div", { id: "sample" });
  const exportCard = exportSection(sid, isList);
  const refreshLive = () => {
    loadTrend(trend, sid, ctx);
    renderInsights(insights, sid, ctx, { onExact: exportCard.setBlacklisted });
    if (document.body.hasAttribute("data-can-pii")) renderSample(sample, sid, ctx);
  };

  replace(view,
    header(segment, ctx),
    isList ? null : ruleSection(segment, ctx),
    h("div", { class: "grid" },
      card("Trend", { id: "trend", class: "card wide" }, trend),
      isList ? usageSection(sid, ctx) : null,
      isList ? uploadSection(sid, ctx, refreshLive) : null,
      card("Size and reachability", { id: "insights-card", class: "card wide" }, insights),
      compareSection(segment, ctx),
      card("Sample users", { id: "sample-card", dataset: { needs: "pii" } }, sample),
      exportCard.el));
  refreshLive();
  // The export note names the blacklisted count when an exact count already exists; never starts a recount.
  api(`${seg(sid)}/insights?mode=exact`).then((exact) => ctx.alive() && exportCard.setBlacklisted(exact), () => {});
}

async function loadTrend(container, sid, ctx) {
  try {
    const data = await api(`${seg(sid)}/trend`);
    if (ctx.alive()) renderTrend(container, data);
  } catch (err) {
    if (ctx.alive()) replace(container, h("p", { class: "error", role: "alert" }, err instanceof ApiError ? err.detail : String(err)));
  }
}

function header(segment, ctx) {
  let hidden = segment.hidden;
  const hiddenBadge = h("span", { class: "badge muted-badge", id: "hidden-badge", hidden: !hidden }, "hidden");
  const toggle = h("button", { type: "button", id: "toggle-hidden", dataset: { needs: "write" } },
    hidden ? "Show in list" : "Hide from list");
  const del = h("button", { type: "button", id: "delete-segment", class: "danger", dataset: { needs: "write" } },
    "Delete");
  const confirm = h("span", { id: "confirm-delete-wrap", hidden: true },
    h("span", { class: "small" }, "Delete this segment? "),
    h("button", { type: "button", id: "confirm-delete", class: "danger" }, "Yes, delete"),
    h("button", { type: "button", id: "cancel-delete" }, "Keep"));
  const error = errorBox("segment-error");

  toggle.addEventListener("click", async () => {
    showError(error, "");
    try {
      const updated = await api(seg(segment.id), { method: "PATCH", json: { hidden: !hidden } });
      hidden = updated.hidden;
      hiddenBadge.hidden = !hidden;
      toggle.textContent = hidden ? "Show in list" : "Hide from list";
    } catch (err) {
      showError(error, err instanceof ApiError ? err.detail : String(err));
    }
  });
  del.addEventListener("click", () => { confirm.hidden = false; del.hidden = true; });
  confirm.querySelector("#cancel-delete").addEventListener("click", () => { confirm.hidden = true; del.hidden = false; });
  confirm.querySelector("#confirm-delete").addEventListener("click", async () => {
    showError(error, "");
    try {
      await api(seg(segment.id), { method: "DELETE" });
      if (ctx.alive()) location.hash = "#/";
    } catch (err) {
      confirm.hidden = true;
      del.hidden = false;
      showError(error, err instanceof ApiError ? `Cannot delete: ${err.detail}` : String(err));
    }
  });

  return h("div", { class: "segment-head" },
    h("a", { href: "#/", class: "back", id: "back-to-list" }, "← Segments"),
    h("div", { class: "page-head" },
      h("div", {},
        h("h1", { id: "segment-name" }, segment.name, " ", kindBadge(segment.kind), " ", hiddenBadge),
        h("p", { class: "muted small" }, `Created ${when(segment.created_at)} · `, h("code", { id: "segment-id" }, segment.id))),
      h("div", { class: "actions" }, toggle, del, confirm)),
    error);
}

function ruleSection(segment, ctx) {
  const backfill = h("p", { class: "small muted", id: "backfill-status" });
  const section = card("Rule", { id: "rule" },
    h("p", { class: "rule-summary", id: "rule-summary" }, segment.summary),
    backfill,
    h("details", {}, h("summary", {}, "Rule as JSON"),
      h("pre", { class: "code", id: "rule-json" }, JSON.stringify(segment.rule, null, 2))));
  const job = segment.backfill;
  const show = (j) => {
    backfill.textContent = j.status === "done" ? "History backfilled." :
      `History backfill ${j.status}: ${Math.round(j.progress * 100)}% (counts grow as it runs).`;
  };
  if (job) {
    show(job);
    if (job.status !== "done" && job.status !== "failed") pollBackfill(job.job_id, show, ctx);
  }
  return section;
}

async function pollBackfill(jobId, show, ctx) {
  while (ctx.alive()) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    try {
      const job = await api(`/jobs/${encodeURIComponent(jobId)}`);
      show(job);
      if (job.status === "done" || job.status === "failed") return;
    } catch {
      return;
    }
  }
}

function usageSection(sid, ctx) {
  const campaigns = h("div", { class: "tile-value", testid: "usage-campaigns" }, "…");
  const journeys = h("div", { class: "tile-value", testid: "usage-journeys" }, "…");
  const error = errorBox("usage-error");
  api(`${seg(sid)}/usage`).then((u) => {
    if (!ctx.alive()) return;
    campaigns.textContent = num(u.campaigns);
    journeys.textContent = num(u.journeys);
  }).catch((err) => showError(error, err instanceof ApiError ? err.detail : String(err)));
  return card("Used by", { id: "usage" }, error,
    h("div", { class: "tiles" },
      h("div", { class: "tile" }, h("div", { class: "tile-label" }, "Campaigns"), campaigns),
      h("div", { class: "tile" }, h("div", { class: "tile-label" }, "Journeys"), journeys)));
}

function uploadSection(sid, ctx, onUploaded) {
  const file = h("input", { type: "file", id: "list-file", accept: ".csv,text/csv,text/plain" });
  const submit = h("button", { type: "submit", class: "primary", id: "list-upload" }, "Upload");
  const result = h("div", { id: "upload-result", "aria-live": "polite" });
  const error = errorBox("upload-error");
  const form = h("form", { id: "upload-form", class: "upload" }, file, submit);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    showError(error, "");
    const chosen = file.files[0];
    if (!chosen) {
      showError(error, "Choose a CSV file first.");
      return;
    }
    submit.disabled = true;
    replace(result, h("span", { class: "muted" }, `Uploading ${chosen.name}…`));
    try {
      const r = await api(`${seg(sid)}/list`, { method: "POST", body: chosen, headers: { "Content-Type": "text/csv" } });
      if (!ctx.alive()) return;
      replace(result, h("div", { class: "tiles" },
        h("div", { class: "tile" }, h("div", { class: "tile-label" }, "Rows"), h("div", { class: "tile-value", testid: "upload-rows" }, num(r.rows))),
        h("div", { class: "tile" }, h("div", { class: "tile-label" }, "Matched"), h("div", { class: "tile-value", testid: "upload-matched" }, num(r.matched))),
        h("div", { class: "tile" }, h("div", { class: "tile-label" }, "Unmatched"), h("div", { class: "tile-value", testid: "upload-unmatched" }, num(r.unmatched)))));
      onUploaded();
    } catch (err) {
      replace(result);
      showError(error, err instanceof ApiError ? err.detail : String(err));
    } finally {
      submit.disabled = false;
    }
  });
  return card("Upload users", { id: "upload", dataset: { needs: "write" } },
    h("p", { class: "muted small" }, "A CSV whose header has a ", h("code", {}, "user_id"), ", ", h("code", {}, "email"), " or ",
      h("code", {}, "phone"), " column. Rows that match a known user add them to the list; uploads add, never remove."),
    form, error, result);
}

function exportSection(sid, isList) {
  const boxes = [
    "user_id", ...PROFILE_FIELDS, ...CHANNELS.map((c) => `reachable_${c}`),
  ].map((f) => h("label", { class: "check" },
    h("input", { type: "checkbox", value: f, testid: "export-field", checked: DEFAULT_FIELDS.has(f) }), ` ${f}`));
  const extra = h("input", { id: "export-extra", placeholder: "other profile fields, comma separated", autocomplete: "off" });
  const link = h("a", { id: "export-download", class: "button primary", href: "#" },
    isList ? "Download CSV" : "Export CSV");
  const columns = h("p", { class: "small muted", id: "export-columns" });
  const error = errorBox("export-error");
  const blacklisted = h("span", { id: "export-blacklisted" });
  const el = card(isList ? "Download users" : "Export users", { id: "export", dataset: { needs: "pii" } },
    h("fieldset", { class: "fields" }, h("legend", {}, "Columns"), boxes),
    h("label", { class: "field" }, "Extra fields", extra),
    columns, error,
    h("div", { class: "actions" }, link),
    h("p", { class: "note small", id: "export-note" },
      "Blacklisted users count in the size and reachability above but are never exported, so the file can have fewer rows.",
      blacklisted));

  function fields() {
    const picked = [...el.querySelectorAll("input[type=checkbox]:checked")].map((b) => b.value);
    const more = extra.value.split(",").map((s) => s.trim()).filter(Boolean);
    const bad = more.find((f) => !FIELD_NAME.test(f) || (f.startsWith("reachable_") && !CHANNELS.includes(f.slice(10))));
    const all = [...new Set([...picked, ...more])];
    return { all, bad };
  }
  function update() {
    const { all, bad } = fields();
    showError(error, bad ? `“${bad}” is not a field name: use letters, digits, _ . - (or reachable_<channel>).`
      : all.length ? "" : "Pick at least one column.");
    columns.textContent = all.length ? `Columns: ${all.join(", ")}` : "";
    link.href = `${seg(sid)}/export.csv${query({ fields: all.join(",") })}`;
    link.setAttribute("aria-disabled", String(Boolean(bad) || !all.length));
  }
  el.addEventListener("input", update);
  el.addEventListener("change", update);
  link.addEventListener("click", async (ev) => {
    ev.preventDefault();
    update();
    if (link.getAttribute("aria-disabled") === "true") return;
    try {
      await download(link.getAttribute("href"), `${sid}.csv`);
    } catch (err) {
      showError(error, err instanceof ApiError ? `Export failed: ${err.detail}` : String(err));
    }
  });
  update();
  return {
    el,
    setBlacklisted(exact) {
      if (!exact || exact.mode !== "exact") return;
      blacklisted.textContent = ` At the last exact count (${when(exact.computed_at)}), ${num(exact.blacklisted)} member${exact.blacklisted === 1 ? " was" : "s were"} blacklisted.`;
    },
  };
}
