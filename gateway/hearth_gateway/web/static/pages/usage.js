// Usage: tokens per model and day, GPU-seconds per deployment and day, for a period of UTC
// days, from the usage ledger (GET /v1/accounts/<a>/usage, a Hearth extension); charts,
// tables and CSV downloads. Refreshes by itself.

import { errorBox, h, replace, shortName, table } from "../dom.js";

const REFRESH_MS = 10000;
const SVG = "http://www.w3.org/2000/svg";
const DAY_MS = 86400000;

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  for (const child of children) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  return node;
}

/** "YYYY-MM-DD" of a Date, in UTC. */
function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

/** The preset periods, as inclusive [from, to] UTC days. */
export function presetDays(preset, now = new Date()) {
  const today = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  const monthStart = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  if (preset === "last-month") {
    const start = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
    return [isoDay(start), isoDay(new Date(monthStart.getTime() - DAY_MS))];
  }
  if (preset === "7-days") return [isoDay(new Date(today.getTime() - 6 * DAY_MS)), isoDay(today)];
  if (preset === "30-days") return [isoDay(new Date(today.getTime() - 29 * DAY_MS)), isoDay(today)];
  const monthEnd = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1) - DAY_MS);
  return [isoDay(monthStart), isoDay(monthEnd)];
}

/** The API's [startTime, endTime) of inclusive UTC days [from, to]. */
export function periodQuery(from, to) {
  const end = new Date(Date.parse(`${to}T00:00:00Z`) + DAY_MS);
  return { startTime: `${from}T00:00:00Z`, endTime: end.toISOString().replace(".000Z", "Z") };
}

/** Every UTC day from `from` to `to`, inclusive. */
function daysBetween(from, to) {
  const days = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`) && days.length < 400; t += DAY_MS) {
    days.push(isoDay(new Date(t)));
  }
  return days;
}

/** A CSV file of `rows` with `columns` [{title, value(row)}]; cells that a spreadsheet would
 * run as a formula are prefixed with '. */
export function toCsv(columns, rows) {
  const cell = (value) => {
    let text = value === undefined || value === null ? "" : String(value);
    if (/^[=+\-@\t\r]/.test(text) && Number.isNaN(Number(text))) text = `'${text}`;
    return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  return [columns.map((c) => cell(c.title)), ...rows.map((r) => columns.map((c) => cell(c.value(r))))]
    .map((line) => line.join(","))
    .join("\r\n") + "\r\n";
}

function download(filename, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function number(value, digits = 0) {
  return Number(value || 0).toLocaleString(undefined, { maximumFractionDigits: digits });
}

/** A bar chart of one value per day, as SVG (days without a value drawn as zero). */
export function barChart(id, title, unit, days, valueOf) {
  const width = 560;
  const height = 200;
  const pad = { left: 60, right: 10, top: 12, bottom: 30 };
  const values = days.map((day) => valueOf.get(day) || 0);
  const hi = Math.max(...values, 0);
  const total = values.reduce((a, b) => a + b, 0);
  const chart = svg(
    "svg",
    { class: "chart", id, viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": `${title}: ${number(total, 2)} ${unit} over ${days.length} days`, "data-total": total },
    svg("title", {}, title),
    svg("line", { x1: pad.left, y1: height - pad.bottom, x2: width - pad.right, y2: height - pad.bottom, stroke: "#4f5863" }),
    svg("text", { x: pad.left - 6, y: pad.top + 10, "text-anchor": "end", "font-size": 11 }, number(hi, 2)),
    svg("text", { x: pad.left - 6, y: height - pad.bottom, "text-anchor": "end", "font-size": 11 }, "0"),
  );
  if (days.length) {
    chart.appendChild(svg("text", { x: pad.left, y: height - 10, "font-size": 11 }, days[0]));
    chart.appendChild(svg("text", { x: width - pad.right, y: height - 10, "text-anchor": "end", "font-size": 11 }, days[days.length - 1]));
  }
  const slot = (width - pad.left - pad.right) / Math.max(days.length, 1);
  const span = height - pad.top - pad.bottom;
  days.forEach((day, i) => {
    if (!values[i] || !hi) return;
    const barHeight = Math.max((values[i] / hi) * span, 1);
    chart.appendChild(
      svg(
        "rect",
        { class: "bar", x: (pad.left + i * slot + slot * 0.15).toFixed(1), y: (height - pad.bottom - barHeight).toFixed(1), width: Math.max(slot * 0.7, 1).toFixed(1), height: barHeight.toFixed(1), fill: "#9a3412" },
        svg("title", {}, `${day}: ${number(values[i], 2)} ${unit}`),
      ),
    );
  });
  return h("figure", { class: "usage-chart" }, h("figcaption", {}, title), chart);
}

function sumBy(rows, key, value) {
  const sums = new Map();
  for (const row of rows) sums.set(row[key], (sums.get(row[key]) || 0) + value(row));
  return sums;
}

const TOKEN_COLUMNS = [
  { title: "Day (UTC)", value: (r) => r.day },
  { title: "Model", value: (r) => r.model },
  { title: "Requests", value: (r) => r.requests, num: true },
  { title: "Prompt tokens", value: (r) => r.promptTokens, num: true },
  { title: "Completion tokens", value: (r) => r.completionTokens, num: true },
];
const GPU_COLUMNS = [
  { title: "Day (UTC)", value: (r) => r.day },
  { title: "Deployment", value: (r) => r.deployment },
  { title: "Accelerator", value: (r) => r.acceleratorType },
  { title: "GPU-seconds", value: (r) => r.gpuSeconds, num: true, digits: 1 },
  { title: "Replica-seconds", value: (r) => r.replicaSeconds, num: true, digits: 1 },
];

function shown(columns) {
  return columns.map((c) => ({
    title: c.title,
    num: c.num,
    cell: (r) => {
      const value = c.value(r);
      if (c.num) return number(value, c.digits || 0);
      return value.startsWith("accounts/") ? h("span", { title: value }, shortName(value)) : value;
    },
  }));
}

function section(id, title, columns, rows, filename, chart, empty) {
  return h(
    "section",
    { class: "card", id, "aria-labelledby": `${id}-title` },
    h("div", { class: "row" },
      h("h2", { id: `${id}-title` }, title),
      h("button", { type: "button", class: "secondary", id: `${id}-csv`, disabled: !rows.length, onclick: () => download(filename, toCsv(columns, rows)) }, "Download CSV")),
    chart,
    table(shown(columns), rows, { empty, rowId: (r) => `${r.day}/${shortName(r.model || r.deployment)}` }),
  );
}

export async function render(ctx, view) {
  const [first, last] = presetDays("this-month");
  const preset = h("select", { id: "usage-preset" },
    h("option", { value: "this-month" }, "This month"),
    h("option", { value: "last-month" }, "Last month"),
    h("option", { value: "7-days" }, "Last 7 days"),
    h("option", { value: "30-days" }, "Last 30 days"),
    h("option", { value: "custom" }, "Custom"));
  const from = h("input", { id: "usage-from", type: "date", required: true, value: first });
  const to = h("input", { id: "usage-to", type: "date", required: true, value: last });
  const body = h("div", { id: "usage-body" });
  const form = h(
    "form",
    { class: "card", "aria-label": "Period" },
    h("div", { class: "row" },
      h("div", {}, h("label", { for: "usage-preset" }, "Period"), preset),
      h("div", {}, h("label", { for: "usage-from" }, "From (UTC day)"), from),
      h("div", {}, h("label", { for: "usage-to" }, "To (UTC day, included)"), to),
      h("div", {}, h("button", { type: "submit", id: "usage-show" }, "Show"))),
  );
  replace(
    view,
    h("h1", {}, "Usage"),
    h("p", { class: "hint" }, "Tokens the gateway answered per model, and accelerator time the operator metered per deployment, from the usage ledger. Refreshes by itself."),
    form,
    body,
  );
  let lastSeen = null;
  const refresh = async () => {
    if (!from.value || !to.value) return;
    const [start, end] = from.value <= to.value ? [from.value, to.value] : [to.value, from.value];
    const query = periodQuery(start, end);
    try {
      const usage = await ctx.api.get(ctx.api.acct("usage"), query);
      const seen = JSON.stringify([query, usage]);
      if (seen === lastSeen) return;
      lastSeen = seen;
      const tokens = usage.tokens || [];
      const gpu = usage.acceleratorSeconds || [];
      const days = daysBetween(start, end);
      const tokenTotal = tokens.reduce((a, r) => a + r.promptTokens + r.completionTokens, 0);
      const gpuTotal = gpu.reduce((a, r) => a + r.gpuSeconds, 0);
      const suffix = `${ctx.account}-${start}-to-${end}.csv`;
      replace(
        body,
        h("p", { id: "usage-summary" },
          `${start} to ${end} (UTC): ${number(tokens.reduce((a, r) => a + r.requests, 0))} requests, ${number(tokenTotal)} tokens, ${number(gpuTotal / 3600, 2)} GPU-hours.`),
        section("usage-tokens", "Tokens per model and day", TOKEN_COLUMNS, tokens, `tokens-${suffix}`,
          barChart("tokens-chart", "Tokens per day (prompt + completion)", "tokens", days, sumBy(tokens, "day", (r) => r.promptTokens + r.completionTokens)),
          "No requests in this period."),
        section("usage-gpu", "Accelerator time per deployment and day", GPU_COLUMNS, gpu, `gpu-seconds-${suffix}`,
          barChart("gpu-chart", "GPU-hours per day", "GPU-hours", days, sumBy(gpu, "day", (r) => r.gpuSeconds / 3600)),
          "No dedicated replicas ran in this period."),
      );
    } catch (error) {
      lastSeen = null;
      replace(body, errorBox(error));
    }
  };
  preset.addEventListener("change", () => {
    if (preset.value === "custom") return;
    [from.value, to.value] = presetDays(preset.value);
    refresh();
  });
  for (const input of [from, to]) input.addEventListener("change", () => { preset.value = "custom"; });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });
  ctx.every(REFRESH_MS, refresh);
  await refresh();
}
