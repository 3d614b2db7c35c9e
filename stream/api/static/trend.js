// Segment trend: size per day (the end-of-day membership) with the users who
// entered and exited that day, drawn with the vendored uPlot (window.uPlot).
//
// The axis starts on the segment's creation day: nothing before it is drawn,
// not even as zero (the segment did not exist). The creation day itself is not
// a full day, so its first point is the day after, or today. Hovering shows the
// day's values in a tooltip. What the chart drew is mirrored in data-*
// attributes (x-ticks, days) so tests can read it off a canvas.

import { h, num, replace } from "./dom.js";

const DAY = 86400;
const DAY_STEPS = [1, 2, 7, 14, 28, 56, 91, 182, 364].map((d) => d * DAY);
// Whole users only: 1, 2, 5, 10, 20, 50, ... so a small segment's axis does not read 0, 0, 1, 1.
const COUNT_STEPS = Array.from({ length: 30 }, (_, i) => [1, 2, 5][i % 3] * 10 ** Math.floor(i / 3));
const COLORS = { size: "#2563eb", entered: "#16a34a", exited: "#dc2626" };
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

function dayToSeconds(date) {
  // Trend dates are calendar days of the server's zone; plot them as UTC midnights so no local offset shifts them.
  return Date.parse(`${date}T00:00:00Z`) / 1000;
}

const isoDay = (seconds) => new Date(seconds * 1000).toISOString().slice(0, 10);
const shortDay = (seconds) => {
  const d = new Date(seconds * 1000);
  return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]}`;
};
const longDay = (seconds) => new Date(seconds * 1000).toLocaleDateString("en-GB",
  { timeZone: "UTC", weekday: "short", day: "numeric", month: "short", year: "numeric" });

// The creation day: the API's own (in the server's zone); from an older API, the day before the first point.
function creationDay(trend) {
  if (trend.created_date) return trend.created_date;
  const first = trend.points.length ? trend.points[0].date : trend.today.date;
  return isoDay(dayToSeconds(first) - (trend.points.length ? DAY : 0));
}

export function renderTrend(container, trend) {
  const created = creationDay(trend);
  // Nothing dated before the creation day is drawn, whatever a counter says (today always is).
  const all = [...trend.points.filter((p) => p.date >= created), { ...trend.today, isToday: true }];
  const chart = h("div", { class: "chart", id: "trend-chart", testid: "trend-chart", dataset: { created } });
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
  draw(chart, all, dayToSeconds(created));
}

// A tooltip that follows the cursor's nearest day; built from text nodes, positioned through CSSOM
// (no inline markup, styles or handlers, so a strict Content-Security-Policy is fine).
function tooltip(points) {
  const tip = h("div", { class: "trend-tip", testid: "trend-tooltip", role: "tooltip", hidden: true });
  const show = (u) => {
    const i = u.cursor.idx;
    if (i == null || u.cursor.left == null || u.cursor.left < 0) {
      tip.hidden = true;
      return;
    }
    const p = points[i];
    const x = u.data[0][i];
    replace(tip,
      h("div", { class: "trend-tip-date", testid: "tooltip-date" }, longDay(x), p.isToday ? " (today, so far)" : ""),
      h("div", {}, h("span", { class: "trend-tip-label" }, "Size"), h("strong", { testid: "tooltip-size" }, num(p.size))),
      h("div", { class: "up" }, h("span", { class: "trend-tip-label" }, "Entered"),
        h("strong", { testid: "tooltip-entered" }, `+${num(p.entered)}`)),
      h("div", { class: "down" }, h("span", { class: "trend-tip-label" }, "Exited"),
        h("strong", { testid: "tooltip-exited" }, `−${num(p.exited)}`)));
    tip.dataset.date = p.date;
    tip.hidden = false;
    // Beside the day's point, flipped to its left near the right edge, kept inside the plot.
    const left = u.valToPos(x, "x");
    const top = u.valToPos(p.size, "y");
    const width = u.over.clientWidth;
    const flip = left + 12 + tip.offsetWidth > width;
    tip.style.left = `${Math.max(0, flip ? left - 12 - tip.offsetWidth : left + 12)}px`;
    tip.style.top = `${Math.max(0, Math.min(top - tip.offsetHeight / 2, u.over.clientHeight - tip.offsetHeight))}px`;
  };
  return { tip, show };
}

function draw(el, points, createdX) {
  if (!window.uPlot) {
    el.textContent = "Chart library not loaded.";
    return;
  }
  const xs = points.map((p) => dayToSeconds(p.date));
  // Today is last; a creation instant ahead of the API's clock must not hide it.
  const first = Math.min(createdX, xs[0]);
  const last = xs[xs.length - 1];
  el.dataset.days = points.map((p) => p.date).join(",");
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
  const { tip, show } = tooltip(points);
  const opts = {
    width: width(),
    height: 240,
    legend: { live: false },
    cursor: { drag: { x: false, y: false } },
    tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    scales: {
      // From the creation day to today, half a day of margin each side; never before the creation day.
      // (A function of the data's ends: uPlot widens a single x value by 1000 units before calling range.)
      x: { time: true, range: () => [first - DAY / 2, last + DAY / 2] },
      y: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.15] },
    },
    axes: [
      {
        stroke: "#64748b", grid: { stroke: "#eef1f5" }, incrs: DAY_STEPS,
        values: (_u, splits) => {
          el.dataset.xTicks = splits.map(isoDay).join(",");
          return splits.map(shortDay);
        },
      },
      { stroke: "#64748b", grid: { stroke: "#eef1f5" }, incrs: COUNT_STEPS, values: (_u, vals) => vals.map((v) => num(v)) },
    ],
    series: [
      { value: (_u, v) => (v == null ? "–" : isoDay(v)) },
      series("Size", COLORS.size, "rgba(37,99,235,0.08)", 10),
      series("Entered", COLORS.entered),
      series("Exited", COLORS.exited),
    ],
    hooks: { setCursor: [show] },
  };
  const plot = new window.uPlot(opts, data, el);
  plot.over.append(tip);
  plot.over.addEventListener("mouseleave", () => { tip.hidden = true; });
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
