// Fine-tuning jobs: create from a dataset and a base model, the list with live progress
// and an ETA (paged), one job's detail with its loss curve (drawn from the progress seen
// while the page is open: the API reports the latest loss, not a history), cancel, and on
// a completed job one-click Deploy of its LoRA onto a deployment, then the playground.

import {
  action, confirmDialog, errorBox, fields, formDialog, h, notify, replace, shortName, stateBadge,
  table, when,
} from "../dom.js";
import { Pager } from "../paging.js";

const REFRESH_MS = 3000;
const FINAL = new Set(["JOB_STATE_COMPLETED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EARLY_STOPPED"]);
const SVG = "http://www.w3.org/2000/svg";

/** Loss points seen per job, for this page's lifetime in the tab. */
const history = new Map();
/** Progress seen per job: the first report and the latest, with when they were seen. */
const seenProgress = new Map();

function remember(job) {
  const percent = job.jobProgress && job.jobProgress.percent;
  if (typeof percent === "number") {
    const seen = seenProgress.get(job.name) || { first: { t: Date.now(), percent } };
    if (percent !== seen.first.percent && (!seen.last || seen.last.percent !== percent)) seen.last = { t: Date.now(), percent };
    seenProgress.set(job.name, seen);
  }
  const p = job.jobProgress;
  if (!p || p.trainLoss === undefined || p.trainLoss === null) return;
  const points = history.get(job.name) || [];
  const last = points[points.length - 1];
  if (!last || last.step !== p.step) points.push({ step: p.step || 0, train: p.trainLoss, eval: p.evalLoss });
  history.set(job.name, points);
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  for (const child of children) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  return node;
}

/** A line chart of train (and eval) loss by step, as SVG. */
export function lossChart(points) {
  const width = 560;
  const height = 220;
  const pad = { left: 52, right: 12, top: 12, bottom: 32 };
  if (points.length < 2) return h("p", { class: "muted", id: "loss-chart" }, "The loss curve appears once two steps have been reported.");
  const values = points.flatMap((p) => [p.train, p.eval]).filter((v) => typeof v === "number");
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const span = hi - lo || 1;
  const first = points[0].step;
  const steps = points[points.length - 1].step - first || 1;
  const x = (step) => pad.left + ((step - first) / steps) * (width - pad.left - pad.right);
  const y = (v) => pad.top + (1 - (v - lo) / span) * (height - pad.top - pad.bottom);
  const line = (key, cls) => {
    const seen = points.filter((p) => typeof p[key] === "number");
    if (seen.length < 2) return null;
    return svg("polyline", { class: cls, fill: "none", stroke: key === "train" ? "#9a3412" : "#0a58ca", "stroke-width": 2, points: seen.map((p) => `${x(p.step).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ") });
  };
  const chart = svg(
    "svg",
    { class: "chart", id: "loss-chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": `Training loss from ${points[0].train.toFixed(3)} to ${points[points.length - 1].train.toFixed(3)} over steps ${first} to ${points[points.length - 1].step}`, "data-points": points.length },
    svg("line", { x1: pad.left, y1: height - pad.bottom, x2: width - pad.right, y2: height - pad.bottom, stroke: "#4f5863" }),
    svg("line", { x1: pad.left, y1: pad.top, x2: pad.left, y2: height - pad.bottom, stroke: "#4f5863" }),
    svg("text", { x: pad.left - 6, y: pad.top + 10, "text-anchor": "end", "font-size": 11 }, hi.toFixed(3)),
    svg("text", { x: pad.left - 6, y: height - pad.bottom, "text-anchor": "end", "font-size": 11 }, lo.toFixed(3)),
    svg("text", { x: pad.left, y: height - 10, "font-size": 11 }, `step ${first}`),
    svg("text", { x: width - pad.right, y: height - 10, "text-anchor": "end", "font-size": 11 }, `step ${points[points.length - 1].step}`),
  );
  for (const l of [line("train", "train"), line("eval", "eval")]) if (l) chart.appendChild(l);
  return chart;
}

/**
 * Seconds left of a running job, and how that was worked out; null when there is no
 * basis. The API gives progress (percent) but no rate, so the rate is either
 * - what this page saw: the percent gained between the first report it saw and the latest
 *   change, over the time between them (once the progress has moved while the page was
 *   open), or
 * - the percent done over the time since the job was created (which includes queueing
 *   and loading the model, so it over-estimates early on).
 * Remaining = (100 - percent) / rate.
 */
export function eta(job, seen, nowMs) {
  const p = job.jobProgress && job.jobProgress.percent;
  if (job.state !== "JOB_STATE_RUNNING" || typeof p !== "number" || p <= 0 || p >= 100) return null;
  if (seen && seen.last && seen.last.t > seen.first.t && seen.last.percent > seen.first.percent) {
    const rate = (seen.last.percent - seen.first.percent) / ((seen.last.t - seen.first.t) / 1000);
    const sinceLast = Math.max(0, (nowMs - seen.last.t) / 1000);
    return { seconds: Math.max(0, (100 - seen.last.percent) / rate - sinceLast), basis: "progress seen on this page" };
  }
  const created = Date.parse(job.createTime || "");
  if (Number.isNaN(created) || nowMs <= created) return null;
  const rate = p / ((nowMs - created) / 1000);
  return { seconds: (100 - p) / rate, basis: "progress since the job was created" };
}

export function duration(seconds) {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

function etaText(job) {
  const left = eta(job, seenProgress.get(job.name), Date.now());
  return left ? `about ${duration(left.seconds)} left (from ${left.basis})` : "";
}

function progressCell(job) {
  if (!job.jobProgress) return h("span", { class: "hint" }, "no progress reported yet");
  const p = job.jobProgress;
  const percent = Math.round(p.percent || 0);
  return h(
    "div",
    {},
    h("progress", { max: 100, value: percent, "aria-label": `${shortName(job.name)} progress` }),
    h("span", { class: "hint" }, ` ${percent}%${p.totalSteps ? ` · step ${p.step || 0}/${p.totalSteps}` : ""}${p.epoch ? ` · epoch ${p.epoch}` : ""}`),
    job.state === "JOB_STATE_RUNNING" ? h("span", { class: "hint eta", "data-eta": "" }, ` · ${etaText(job) || "ETA once progress is reported"}`) : null,
  );
}

function loss(value) {
  return typeof value === "number" ? value.toFixed(4) : "";
}

async function cancel(ctx, job) {
  const id = shortName(job.name);
  if (!(await confirmDialog(`Cancel fine-tuning job ${id}?`, "Cancel job"))) return;
  try {
    await ctx.api.post(ctx.api.acct(`supervisedFineTuningJobs/${encodeURIComponent(id)}:cancel`), {});
    notify(`Cancelling ${id}.`);
  } catch (error) {
    notify(`Cancel failed: ${error.message}`);
  }
}

function createForm(ctx, after) {
  const allowed = ctx.access.create();
  const dataset = h("select", { id: "ft-dataset", required: true });
  const base = h("select", { id: "ft-base", required: true });
  const output = h("input", { id: "ft-output", pattern: "[a-z][a-z0-9-]{0,62}", placeholder: "the job ID" });
  const epochs = h("input", { id: "ft-epochs", type: "number", min: 1, value: "1" });
  const rank = h("input", { id: "ft-rank", type: "number", min: 4, max: 64, value: "8" });
  const rate = h("input", { id: "ft-lr", type: "number", step: "any", min: 0, value: "0.0001" });
  const problem = h("div", {});
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "ft-title" },
    h("h2", { id: "ft-title" }, "Create a fine-tuning job"),
    h("div", { class: "row" },
      h("div", {}, h("label", { for: "ft-dataset" }, "Dataset (READY)"), dataset),
      h("div", {}, h("label", { for: "ft-base" }, "Base model"), base),
      h("div", {}, h("label", { for: "ft-output" }, "Output model ID"), output)),
    h("div", { class: "row" },
      h("div", {}, h("label", { for: "ft-epochs" }, "Epochs"), epochs),
      h("div", {}, h("label", { for: "ft-rank" }, "LoRA rank"), rank),
      h("div", {}, h("label", { for: "ft-lr" }, "Learning rate"), rate)),
    h("p", {}, action("Create job", allowed, null, { type: "submit", id: "ft-create" })),
    problem,
  );
  Promise.all([
    ctx.api.listAll(ctx.api.acct("datasets"), "datasets", { filter: 'state = "READY"' }),
    ctx.api.listAll(ctx.api.acct("models"), "models", { filter: 'kind = "HF_BASE_MODEL"' }),
  ])
    .then(([datasets, models]) => {
      replace(dataset, datasets.map((d) => h("option", { value: d.name }, shortName(d.name))));
      replace(base, models.map((m) => h("option", { value: m.name }, shortName(m.name))));
    })
    .catch((error) => replace(problem, errorBox(error)));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    replace(problem);
    const body = {
      dataset: dataset.value,
      baseModel: base.value,
      epochs: Number(epochs.value),
      loraRank: Number(rank.value),
      learningRate: Number(rate.value),
    };
    if (output.value.trim()) body.outputModel = output.value.trim();
    try {
      const job = await ctx.api.post(ctx.api.acct("supervisedFineTuningJobs"), body);
      notify(`Created ${shortName(job.name)}.`);
      after(job);
    } catch (error) {
      replace(problem, errorBox(error));
    }
  });
  return form;
}

/**
 * Deploy a completed job's LoRA: load it (POST deployedModels) onto a deployment of the
 * same base model that takes addons, then open the playground on it.
 */
async function deploy(ctx, job) {
  const deployments = await ctx.api.listAll(ctx.api.acct("deployments"), "deployments");
  const fitting = deployments.filter((d) => d.enableAddons && d.baseModel === job.baseModel && d.state !== "DELETING");
  if (!fitting.length) {
    notify(`No deployment of ${shortName(job.baseModel)} takes LoRA addons; create one with LoRA addons enabled.`);
    return;
  }
  const data = await formDialog(
    `Deploy ${shortName(job.outputModel)}`,
    [
      h("label", { for: "deploy-target" }, "Deployment"),
      h("select", { id: "deploy-target", name: "deployment" }, fitting.map((d) => h("option", { value: d.name }, `${shortName(d.name)} (${d.state})`))),
      h("p", { class: "hint" }, `Loads the LoRA onto a deployment of ${shortName(job.baseModel)} with LoRA addons enabled, then opens the playground on it.`),
    ],
    "Deploy",
  );
  if (!data) return;
  try {
    const loaded = await ctx.api.post(ctx.api.acct("deployedModels"), { model: job.outputModel, deployment: data.get("deployment") });
    notify(`Loading ${shortName(job.outputModel)} onto ${shortName(data.get("deployment"))}.`);
    location.hash = `#/playground?model=${encodeURIComponent(loaded.name)}`;
  } catch (error) {
    notify(`Deploy failed: ${error.message}`);
  }
}

async function detail(ctx, view, id) {
  const body = h("div", {});
  replace(view, h("p", {}, h("a", { href: "#/fine-tuning" }, "← Fine-tuning jobs")), h("h1", {}, `Fine-tuning job ${id}`), body);
  let last = null;
  const refresh = async () => {
    if (document.querySelector("dialog[open]")) return;
    try {
      const job = await ctx.api.get(ctx.api.acct(`supervisedFineTuningJobs/${encodeURIComponent(id)}`));
      remember(job);
      const seen = JSON.stringify([job, history.get(job.name)]);
      if (seen === last) return;
      last = seen;
      const p = job.jobProgress || {};
      replace(
        body,
        fields([
          ["State", stateBadge(job.state)],
          ["Status", job.status && job.status.message],
          ["Progress", progressCell(job)],
          ["ETA", etaText(job)],
          ["Train loss", loss(p.trainLoss)],
          ["Eval loss", loss(p.evalLoss)],
          ["Dataset", job.dataset],
          ["Base model", job.baseModel || job.warmStartFrom],
          ["Output model", job.outputModel],
          ["Epochs", job.epochs],
          ["LoRA rank", job.loraRank],
          ["Created", `${when(job.createTime)}${job.createdBy ? ` by ${job.createdBy}` : ""}`],
          ["Completed", when(job.completedTime)],
        ]),
        h("h2", {}, "Loss"),
        lossChart(history.get(job.name) || []),
        FINAL.has(job.state) ? null : h("p", {}, action("Cancel job", ctx.access.change(job.createdBy, "cancel"), () => cancel(ctx, job).then(refresh), { class: "danger" })),
        job.state === "JOB_STATE_COMPLETED" ? h("p", {}, action("Deploy", ctx.access.create(), () => deploy(ctx, job), { id: "ft-deploy" })) : null,
      );
    } catch (error) {
      last = null;
      replace(body, errorBox(error));
    }
  };
  ctx.every(REFRESH_MS, refresh);
  await refresh();
}

export async function render(ctx, view, id) {
  if (id) return detail(ctx, view, id);
  const list = h("div", {});
  replace(
    view,
    h("h1", {}, "Fine-tuning jobs"),
    createForm(ctx, (job) => { location.hash = `#/fine-tuning/${encodeURIComponent(shortName(job.name))}`; }),
    h("h2", {}, "Jobs"),
    h("p", { class: "hint" }, "Refreshes by itself."),
    list,
  );
  const pager = new Pager(ctx, ctx.api.acct("supervisedFineTuningJobs"), "supervisedFineTuningJobs");
  let last = null;
  const refresh = async () => {
    if (document.querySelector("dialog[open]")) return;
    try {
      const page = await pager.load();
      const jobs = page.items;
      jobs.forEach(remember);
      const seen = JSON.stringify([page, pager.pages]);
      if (seen === last) return;
      last = seen;
      replace(
        list,
        table(
          [
            { title: "Job", cell: (j) => h("a", { href: `#/fine-tuning/${encodeURIComponent(shortName(j.name))}` }, shortName(j.name)) },
            { title: "State", key: "state", cell: (j) => stateBadge(j.state) },
            { title: "Progress", cell: progressCell },
            { title: "Train loss", num: true, cell: (j) => loss((j.jobProgress || {}).trainLoss) },
            { title: "Dataset", cell: (j) => shortName(j.dataset) },
            { title: "Base", cell: (j) => shortName(j.baseModel || j.warmStartFrom) },
            { title: "Output model", cell: (j) => shortName(j.outputModel) },
            { title: "Created", cell: (j) => when(j.createTime) },
          ],
          jobs,
          { empty: "No fine-tuning jobs yet.", rowId: (j) => shortName(j.name) },
        ),
        pager.control(page, refresh),
      );
    } catch (error) {
      last = null;
      replace(list, errorBox(error));
    }
  };
  ctx.every(REFRESH_MS, refresh);
  await refresh();
}
