// Segment trend: size per day (the end-of-day membership) with the users who
// entered and exited that day, drawn with the vendored uPlot (window.uPlot).

import { h, num, replace } from "./dom.js";

const DAY = 86400;
const DAY_STEPS = [1, 2, 7, 14, 28, 56, 91, 182, 364].map((d) => d * DAY);
// Whole users only: 1, 2, 5, 10, 20, 50, ... so a small segment's axis does not read 0, 0, 1, 1.
const COUNT_STEPS = Array.from({ length: 30 }, (_, i) => [1, 2, 5][i % 3] * 10 ** Math.floor(i / 3));
const COLORS = { size: "#2563eb", entered: "#16a34a", exited: "#dc2626" };

function dayToSeconds(date) {
  // Trend dates are calendar days of the server's zone; plot them as UTC midnights so no local offset shifts them.
  return Date.parse(`${date}T00:00:00Z`) / 1000;
}

export function renderTrend(container, trend) {
  const all = [...trend.points, { ...trend.today, isToday: true }];
  const chart = h("div", { class: "chart", id: "trend-chart", testid: "trend-chart" });
  const t = trend.today;
  const summary = h("p", { class: "trend-today", testid: "trend-today" },
    h("strong", {}, num(t.size)), " members today · ",
    h("span", { class: "up" }, `+${num(t.entered)} entered`), " · ",
    h("span", { class: "down" }, `−${num(t.exited)} exited`),
    trend.points.length ? "" : h("span", { class: "muted" }, " · daily points start the first full day after creation"));
  const table = h("details", { class: "trend-table" }, h("summary", {}, "Per-day values"),
    h("table", { class: "table compact" },
      h("thead", {}, h("tr", {}, h("th", {}, "Day"), h("th", { class: "num" }, "Size"),
        h("th", { class: "num" }, "Entered"), h("th", { class: "num" }, "Exited"))),
      h("tbody", {}, all.map((p) => h("tr", {}, h("td", {}, p.isToday ? `${p.date} (today, so far)` : p.date),
        h("td", { class: "num" }, num(p.size)), h("td", { class: "num" }, num(p.entered)),
        h("td", { class: "num" }, num(p.exited)))))));
  replace(container, summary, chart, table);
  draw(chart, all);
}

function draw(el, points) {
  if (!window.uPlot) {
    el.textContent = "Chart library not loaded.";
    return;
  }
  const xs = points.map((p) => dayToSeconds(p.date));
  const last = xs[xs.length - 1];
  const data = [
    xs,
    points.map((p) => p.size),
    points.map((p) => p.entered),
    points.map((p) => p.exited),
  ];
  const series = (label, color, fill, dot = 6) => ({
    label, stroke: color, width: 2, fill, points: { show: true, size: dot, fill: color },
    value: (_u, v) => (v == null ? "–" : num(v)),
  });
  const width = () => Math.max(320, el.clientWidth || el.parentElement.clientWidth || 600);
  const opts = {
    width: width(),
    height: 240,
    legend: { live: false },
    cursor: { drag: { x: false, y: false } },
    tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    scales: {
      // At least a week on screen, half a day of margin, so a young segment's few points read as days.
      // (Taken from the data: uPlot widens a single x value by 1000 units before calling range.)
      x: { time: true, range: () => [Math.min(xs[0], last - 6 * DAY) - DAY / 2, last + DAY / 2] },
      y: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.15] },
    },
    axes: [
      { stroke: "#64748b", grid: { stroke: "#eef1f5" }, incrs: DAY_STEPS, values: "{D} {MMM}" },
      { stroke: "#64748b", grid: { stroke: "#eef1f5" }, incrs: COUNT_STEPS, values: (_u, vals) => vals.map((v) => num(v)) },
    ],
    series: [
      { value: (_u, v) => (v == null ? "–" : new Date(v * 1000).toISOString().slice(0, 10)) },
      series("Size", COLORS.size, "rgba(37,99,235,0.08)", 10),
      series("Entered", COLORS.entered),
      series("Exited", COLORS.exited),
    ],
  };
  const plot = new window.uPlot(opts, data, el);
  const onResize = () => {
    if (!el.isConnected) {
      window.removeEventListener("resize", onResize);
      plot.destroy();
      return;
    }
    plot.setSize({ width: width(), height: 240 });
  };
  window.addEventListener("resize", onResize);
}
