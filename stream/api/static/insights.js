// Insights: size and per-channel reachability, as a fast Estimate (sketches,
// with 95% bounds) or an Exact recount run as a job whose progress we poll.

import { ApiError, api, seg } from "./api.js";
import { CHANNELS, CHANNEL_LABELS, errorBox, h, num, replace, showError, when } from "./dom.js";

const POLL_MS = 400;
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function renderInsights(container, sid, ctx, { onExact = () => {} } = {}) {
  let mode = "estimate";
  let recounting = false;
  const estimateBtn = h("button", { type: "button", id: "mode-estimate", role: "tab", class: "seg-btn" }, "Estimate");
  const exactBtn = h("button", { type: "button", id: "mode-exact", role: "tab", class: "seg-btn" }, "Exact");
  const recountBtn = h("button", { type: "button", id: "recount", hidden: true, dataset: { needs: "write" } },
    "Recount");
  const stamp = h("span", { class: "muted small", id: "insights-stamp" });
  const bar = h("div", { class: "bar" });
  const progressLabel = h("span", { class: "small muted", id: "recount-status" });
  const progress = h("div", { id: "recount-progress", testid: "recount-progress", class: "progress-wrap", hidden: true },
    h("div", { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-label": "Recount progress" },
      bar), progressLabel);
  const body = h("div", { id: "insights-body", "aria-live": "polite" });
  const error = errorBox("insights-error");

  replace(container,
    h("div", { class: "toolbar" },
      h("div", { class: "switch", role: "tablist", "aria-label": "Insights mode" }, estimateBtn, exactBtn),
      recountBtn, stamp),
    progress, error, body);

  function setMode(next) {
    mode = next;
    estimateBtn.setAttribute("aria-selected", String(mode === "estimate"));
    exactBtn.setAttribute("aria-selected", String(mode === "exact"));
    recountBtn.hidden = mode !== "exact";
    container.dataset.mode = mode;
  }

  async function showEstimate() {
    setMode("estimate");
    showError(error, "");
    try {
      const data = await api(`${seg(sid)}/insights?mode=estimate`);
      if (!ctx.alive() || mode !== "estimate") return;
      stamp.textContent = `estimated ${when(data.as_of)}`;
      replace(body, estimateView(data));
    } catch (err) {
      if (ctx.alive()) showError(error, err instanceof ApiError ? err.detail : String(err));
    }
  }

  async function showExact() {
    setMode("exact");
    showError(error, "");
    try {
      const data = await api(`${seg(sid)}/insights?mode=exact`);
      if (!ctx.alive()) return;
      onExact(data);
      if (mode !== "exact") return;
      stamp.textContent = `counted ${when(data.computed_at)}`;
      replace(body, exactView(data));
    } catch (err) {
      if (!ctx.alive()) return;
      if (err instanceof ApiError && err.status === 404) {
        stamp.textContent = "";
        replace(body, h("p", { class: "muted" }, "Never counted exactly: recounting now…"));
        await recount();
      } else {
        showError(error, err instanceof ApiError ? err.detail : String(err));
      }
    }
  }

  function setProgress(fraction, status) {
    const pct = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
    bar.style.width = `${pct}%`;
    bar.parentElement.setAttribute("aria-valuenow", String(pct));
    progressLabel.textContent = `${status} · ${pct}%`;
    progress.dataset.status = status;
  }

  async function recount() {
    if (recounting) return;
    recounting = true;
    recountBtn.disabled = true;
    showError(error, "");
    progress.hidden = false;
    setProgress(0, "queued");
    try {
      const { job_id: jobId } = await api(`${seg(sid)}/recount`, { method: "POST" });
      progress.dataset.jobId = jobId;
      while (ctx.alive()) {
        const job = await api(`/jobs/${encodeURIComponent(jobId)}`);
        setProgress(job.progress, job.status);
        if (job.status === "done") break;
        if (job.status === "failed") throw new ApiError(500, `recount failed: ${job.error || "unknown error"}`);
        await pause(POLL_MS);
      }
      if (!ctx.alive()) return;
      progress.hidden = true;
      recounting = false;
      if (mode === "exact") await showExact();
    } catch (err) {
      if (ctx.alive()) showError(error, err instanceof ApiError ? err.detail : String(err));
    } finally {
      recounting = false;
      recountBtn.disabled = false;
    }
  }

  estimateBtn.addEventListener("click", showEstimate);
  exactBtn.addEventListener("click", showExact);
  recountBtn.addEventListener("click", recount);
  showEstimate();
}

function share(part, whole) {
  return whole > 0 ? Math.min(100, (100 * part) / whole) : 0;
}

function meter(pct) {
  const fill = h("div", { class: "meter-fill" });
  fill.style.width = `${pct.toFixed(1)}%`;  // through CSSOM: a style attribute is refused by a strict style-src
  return h("div", { class: "meter", title: `${pct.toFixed(1)}% of the segment` }, fill);
}

function bounds(e) {
  const lo = Math.round(e.lower_95);
  const hi = Math.round(e.upper_95);
  return lo === hi ? "exact" : `95%: ${num(lo)} – ${num(hi)}`;
}

function estimateView(data) {
  const size = data.size.estimate;
  return h("div", { class: "insights", testid: "insights-estimate" },
    h("div", { class: "tiles" },
      h("div", { class: "tile" }, h("div", { class: "tile-label" }, "Segment size (estimate)"),
        h("div", { class: "tile-value", testid: "insight-size" }, num(size)),
        h("div", { class: "small muted", testid: "size-bounds" }, bounds(data.size)))),
    h("table", { class: "table reach" },
      h("thead", {}, h("tr", {}, h("th", {}, "Channel"), h("th", { class: "num" }, "Reachable"), h("th", {}, "Share"),
        h("th", {}, "95% bounds"))),
      h("tbody", {}, CHANNELS.map((c) => {
        const e = data.reachability[c] || { estimate: 0, lower_95: 0, upper_95: 0 };
        const pct = share(e.estimate, size);
        return h("tr", { testid: "reach-row", dataset: { channel: c } },
          h("td", {}, CHANNEL_LABELS[c]), h("td", { class: "num", testid: "reach-value" }, num(e.estimate)),
          h("td", {}, meter(pct), h("span", { class: "small muted" }, ` ${pct.toFixed(0)}%`)),
          h("td", { class: "small muted" }, bounds(e)));
      }))));
}

function exactView(data) {
  return h("div", { class: "insights", testid: "insights-exact" },
    h("div", { class: "tiles" },
      h("div", { class: "tile" }, h("div", { class: "tile-label" }, "Segment size (exact)"),
        h("div", { class: "tile-value", testid: "insight-size" }, num(data.size))),
      h("div", { class: "tile" }, h("div", { class: "tile-label" }, "Blacklisted (counted, not exported)"),
        h("div", { class: "tile-value", testid: "insight-blacklisted" }, num(data.blacklisted))),
      data.drift ? h("div", { class: "tile" }, h("div", { class: "tile-label" }, "Corrected by the recount"),
        h("div", { class: "tile-value" }, num(data.drift))) : null),
    h("table", { class: "table reach" },
      h("thead", {}, h("tr", {}, h("th", {}, "Channel"), h("th", { class: "num" }, "Reachable"), h("th", {}, "Share"))),
      h("tbody", {}, CHANNELS.map((c) => {
        const n = data.reachability[c] || 0;
        const pct = share(n, data.size);
        return h("tr", { testid: "reach-row", dataset: { channel: c } },
          h("td", {}, CHANNEL_LABELS[c]), h("td", { class: "num", testid: "reach-value" }, num(n)),
          h("td", {}, meter(pct), h("span", { class: "small muted" }, ` ${pct.toFixed(0)}%`)));
      }))));
}
