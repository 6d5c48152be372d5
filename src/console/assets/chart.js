// Usage drawn as inline SVG: a sparkline of a key's last 24 hours and a bar
// chart stacked by outcome. Colours come from app.css classes (.o-valid, …).

import { h, s, uid } from "./dom.js";

/** The outcomes of CONTRACT.md, in stacking order, with the words shown for them. */
export const OUTCOMES = [
  ["valid", "Valid"],
  ["rateLimited", "Rate limited"],
  ["expired", "Expired"],
  ["revoked", "Revoked"],
  ["disabled", "Disabled"],
];

const number = new Intl.NumberFormat();
const compact = new Intl.NumberFormat(undefined, { notation: "compact" });
const hourLabel = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayLabel = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
const bucketLabel = {
  hour: new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" }),
  day: new Intl.DateTimeFormat(undefined, { dateStyle: "medium" }),
};

export function formatCount(n) {
  return number.format(n);
}

/** The smallest 1, 2 or 5 × 10ⁿ at or above `n` (at least 1): a round axis top. */
function roundUp(n) {
  if (n <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(n));
  for (const step of [1, 2, 5, 10]) if (step * power >= n) return step * power;
  return 10 * power;
}

/** One bucket's counts in words: "3 valid, 1 rate limited". */
function describeBucket(bucket) {
  const parts = OUTCOMES.filter(([field]) => bucket[field] > 0).map(
    ([field, label]) => `${formatCount(bucket[field])} ${label.toLowerCase()}`,
  );
  return parts.length ? parts.join(", ") : "no requests";
}

/** A key's requests per hour, as small bars; the total beside it. */
export function sparkline(report) {
  const width = 96;
  const height = 24;
  const buckets = report.buckets;
  const top = Math.max(1, ...buckets.map((bucket) => bucket.total));
  const step = width / Math.max(1, buckets.length);
  const total = report.totals.total;
  const label = `${formatCount(total)} request${total === 1 ? "" : "s"} in the last 24 hours`;
  const bars = buckets.map((bucket, index) => {
    const barHeight = bucket.total === 0 ? 1 : Math.max(2, (bucket.total / top) * (height - 2));
    return s("rect", {
      class: bucket.total === 0 ? "spark-zero" : "spark-bar",
      x: (index * step + 0.5).toFixed(2),
      y: (height - barHeight).toFixed(2),
      width: Math.max(1, step - 1).toFixed(2),
      height: barHeight.toFixed(2),
    });
  });
  return h(
    "span",
    { class: "spark" },
    s(
      "svg",
      { class: "sparkline", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": label },
      s("title", {}, label),
      bars,
    ),
    h("span", { class: "spark-total", "aria-hidden": "true" }, formatCount(total)),
  );
}

/** A legend of the outcomes' colours. */
export function legend() {
  return h(
    "ul",
    { class: "legend" },
    OUTCOMES.map(([field, label]) => h("li", {}, h("span", { class: `swatch o-${field}`, "aria-hidden": "true" }), label)),
  );
}

/**
 * Bars of a usage report (hour or day buckets), each stacked by outcome, with
 * a y axis rounded up and a label every few buckets. Drawn for the `width` it
 * will be shown at, so its text stays readable on a phone. A table beside it
 * holds the same numbers for those who cannot see the chart.
 */
export function stackedBars(report, width = 720) {
  const height = width < 500 ? 200 : 240;
  const margin = { top: 12, right: 8, bottom: 28, left: 36 };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const buckets = report.buckets;
  const top = roundUp(Math.max(0, ...buckets.map((bucket) => bucket.total)));
  const step = plotWidth / Math.max(1, buckets.length);
  const barWidth = Math.max(1, step * 0.78);
  const y = (value) => margin.top + plotHeight - (value / top) * plotHeight;
  // Room for a label every ~64 px.
  const labelEvery = Math.max(1, Math.ceil(64 / step));
  const format = report.granularity === "hour" ? hourLabel : dayLabel;

  const grid = (top % 2 === 0 ? [0, top / 2, top] : [0, top]).map((value) =>
    s(
      "g",
      { class: "grid" },
      s("line", { x1: margin.left, x2: width - margin.right, y1: y(value), y2: y(value) }),
      s("text", { x: margin.left - 6, y: y(value) + 4, "text-anchor": "end" }, compact.format(value)),
    ),
  );

  const bars = buckets.map((bucket, index) => {
    const x = margin.left + index * step + (step - barWidth) / 2;
    let base = 0;
    const segments = OUTCOMES.filter(([field]) => bucket[field] > 0).map(([field]) => {
      const segment = s("rect", {
        class: `o-${field}`,
        x: x.toFixed(2),
        y: y(base + bucket[field]).toFixed(2),
        width: barWidth.toFixed(2),
        height: Math.max(1, y(base) - y(base + bucket[field])).toFixed(2),
      });
      base += bucket[field];
      return segment;
    });
    const when = bucketLabel[report.granularity].format(new Date(bucket.start));
    return s("g", { class: "bucket" }, s("title", {}, `${when}: ${describeBucket(bucket)}`), segments);
  });

  const ticks = buckets
    .map((bucket, index) => [bucket, index])
    .filter(([, index]) => index % labelEvery === 0)
    .map(([bucket, index]) =>
      s(
        "text",
        { class: "tick", x: (margin.left + index * step + step / 2).toFixed(2), y: height - 8, "text-anchor": "middle" },
        format.format(new Date(bucket.start)),
      ),
    );

  const titleId = uid("chart");
  const summary = `${formatCount(report.totals.total)} requests from ${bucketLabel[report.granularity].format(
    new Date(report.from),
  )} to ${bucketLabel[report.granularity].format(new Date(report.to))}, per ${report.granularity}`;
  return s(
    "svg",
    {
      class: "chart",
      viewBox: `0 0 ${width} ${height}`,
      role: "img",
      "aria-labelledby": titleId,
      preserveAspectRatio: "xMidYMid meet",
    },
    s("title", { id: titleId }, summary),
    grid,
    bars,
    ticks,
  );
}

/** The report's buckets as a table (only those with requests; all when none has). */
export function usageTable(report) {
  const rows = report.buckets.filter((bucket) => bucket.total > 0);
  return h(
    "table",
    { class: "numbers" },
    h("caption", { class: "visually-hidden" }, "Requests per bucket and outcome"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, report.granularity === "hour" ? "Hour" : "Day"),
        h("th", { scope: "col" }, "Total"),
        OUTCOMES.map(([, label]) => h("th", { scope: "col" }, label)),
      ),
    ),
    h(
      "tbody",
      {},
      rows.length === 0
        ? h("tr", {}, h("td", { colspan: 2 + OUTCOMES.length }, "No requests in this range."))
        : rows.map((bucket) =>
            h(
              "tr",
              {},
              h("th", { scope: "row" }, bucketLabel[report.granularity].format(new Date(bucket.start))),
              h("td", {}, formatCount(bucket.total)),
              OUTCOMES.map(([field]) => h("td", {}, formatCount(bucket[field]))),
            ),
          ),
    ),
  );
}
