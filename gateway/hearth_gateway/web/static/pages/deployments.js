// Deployments: the list (state, replicas, accelerator; scale, delete; paged), create with
// Fireworks' fields and the server's defaults, and one deployment's detail (status,
// conditions, the LoRAs deployed on it; load and unload).

import {
  action, confirmDialog, errorBox, fields, formDialog, h, notify, replace, shortName,
  stateBadge, table, when,
} from "../dom.js";
import { createForm } from "./deployment_create.js";
import { Pager } from "../paging.js";

const REFRESH_MS = 3000;

function dash(value) {
  return value === undefined || value === null ? "—" : String(value);
}

export function replicas(d) {
  return {
    ready: (d.replicaStats && d.replicaStats.readyReplicaCount) || 0,
    desired: d.desiredReplicaCount || 0,
    min: d.minReplicaCount,
    max: d.maxReplicaCount,
  };
}

function accelerator(d) {
  const type = d.acceleratorType || "—";
  return d.acceleratorCount ? `${type} × ${d.acceleratorCount}` : type;
}

/** Re-render `target` from `load()` every few seconds, only when the data changed. */
function live(ctx, target, load, draw) {
  let last = null;
  let busy = false;
  const refresh = async () => {
    if (busy || document.querySelector("dialog[open]")) return;
    busy = true;
    try {
      const data = await load();
      const seen = JSON.stringify(data);
      if (seen !== last) {
        last = seen;
        replace(target, draw(data, refresh));
      }
    } catch (error) {
      last = null;
      replace(target, errorBox(error));
    } finally {
      busy = false;
    }
  };
  ctx.every(REFRESH_MS, refresh);
  return refresh;
}

async function scale(ctx, d, refresh) {
  const id = shortName(d.name);
  const r = replicas(d);
  const data = await formDialog(
    `Scale ${id}`,
    [
      h("label", { for: "replica-count" }, "Replicas"),
      h("input", { id: "replica-count", name: "replicaCount", type: "number", min: 0, required: true, value: r.desired }),
      h("p", { class: "hint" }, `Sets replicaCount; the autoscaler keeps it within min ${dash(r.min)} and max ${dash(r.max)}.`),
    ],
    "Scale",
  );
  if (!data) return;
  try {
    await ctx.api.post(ctx.api.acct(`deployments/${encodeURIComponent(id)}:scale`), {
      replicaCount: Number(data.get("replicaCount")),
    });
    notify(`Scaling ${id} to ${data.get("replicaCount")}.`);
  } catch (error) {
    notify(`Scale failed: ${error.message}`);
  }
  await refresh();
}

async function remove(ctx, d, refresh, after) {
  const id = shortName(d.name);
  if (!(await confirmDialog(`Delete deployment ${id}? Its replicas stop and its LoRAs are unloaded.`))) return;
  try {
    await ctx.api.del(ctx.api.acct(`deployments/${encodeURIComponent(id)}`));
    notify(`Deleting ${id}.`);
    if (after) after();
  } catch (error) {
    notify(`Delete failed: ${error.message}`);
  }
  await refresh();
}

function listView(ctx, { items }, refresh) {
  return table(
    [
      { title: "Deployment", key: "name", cell: (d) => h("a", { href: `#/deployments/${encodeURIComponent(shortName(d.name))}` }, shortName(d.name)) },
      { title: "Base model", cell: (d) => shortName(d.baseModel) },
      { title: "State", key: "state", cell: (d) => stateBadge(d.state) },
      { title: "Ready", key: "ready", num: true, cell: (d) => String(replicas(d).ready) },
      { title: "Desired", key: "desired", num: true, cell: (d) => String(replicas(d).desired) },
      { title: "Min", key: "min", num: true, cell: (d) => dash(replicas(d).min) },
      { title: "Max", key: "max", num: true, cell: (d) => dash(replicas(d).max) },
      { title: "Accelerator", cell: accelerator },
      {
        title: "Actions",
        cell: (d) =>
          h(
            "div",
            { class: "actions" },
            action("Scale", ctx.access.change(d.createdBy, "scale"), () => scale(ctx, d, refresh), { class: "secondary" }),
            action("Delete", ctx.access.change(d.createdBy, "delete"), () => remove(ctx, d, refresh), { class: "danger" }),
          ),
      },
    ],
    items,
    { empty: "No deployments in this account.", rowId: (d) => shortName(d.name) },
  );
}

async function detail(ctx, view, id) {
  const path = ctx.api.acct(`deployments/${encodeURIComponent(id)}`);
  const body = h("div", {});
  replace(
    view,
    h("p", {}, h("a", { href: "#/deployments" }, "← Deployments")),
    h("h1", {}, `Deployment ${id}`),
    body,
  );
  const load = async () => {
    const d = await ctx.api.get(path);
    const loras = await ctx.api.listAll(ctx.api.acct("deployedModels"), "deployedModels", {
      filter: `deployment = "${d.name}"`,
    });
    const { events } = await ctx.api.get(`${path}:events`);
    return { d, loras, events: events || [] };
  };
  const refresh = live(ctx, body, load, ({ d, loras, events }) => {
    const r = replicas(d);
    const conditions = Array.isArray(d.conditions) && d.conditions.length ? d.conditions : null;
    return [
      fields([
        ["State", stateBadge(d.state)],
        ["Status", d.status ? `${d.status.code}${d.status.message ? ` — ${d.status.message}` : ""}` : ""],
        ["Base model", d.baseModel],
        ["Replicas", `${r.ready} ready of ${r.desired} desired (min ${dash(r.min)}, max ${dash(r.max)})`],
        ["Accelerator", accelerator(d)],
        ["Precision", d.precision],
        ["LoRA addons", d.enableAddons ? `enabled, rank up to ${dash(d.maxPeftRank)}` : "disabled"],
        ["Serverless", d.serverless ? "yes" : "no"],
        ["Created", `${when(d.createTime)}${d.createdBy ? ` by ${d.createdBy}` : ""}`],
        ["Updated", when(d.updateTime)],
      ]),
      h(
        "div",
        { class: "row" },
        action("Scale", ctx.access.change(d.createdBy, "scale"), () => scale(ctx, d, refresh), { class: "secondary" }),
        action("Delete", ctx.access.change(d.createdBy, "delete"), () => remove(ctx, d, refresh, () => { location.hash = "#/deployments"; }), { class: "danger" }),
      ),
      h("h2", {}, "Conditions"),
      conditions
        ? table(
            [
              { title: "Type", key: "type", cell: (c) => c.type },
              { title: "Status", key: "status", cell: (c) => c.status },
              { title: "Reason", cell: (c) => c.reason || "" },
              { title: "Message", cell: (c) => c.message || "" },
              { title: "Since", cell: (c) => when(c.lastTransitionTime) },
            ],
            conditions,
            { rowId: (c) => `condition-${c.type}` },
          )
        : h("p", { class: "muted" }, "No conditions reported yet."),
      h("h2", {}, "Events"),
      events.length
        ? table(
            [
              { title: "Type", key: "type", cell: (e) => e.type },
              { title: "Reason", key: "reason", cell: (e) => e.reason },
              { title: "Message", cell: (e) => e.message },
              { title: "Count", num: true, cell: (e) => String(e.count) },
              { title: "Last seen", cell: (e) => when(e.lastTime) },
            ],
            events,
            { rowId: (e) => `event-${e.reason}` },
          )
        : h("p", { class: "muted" }, "No events about this deployment."),
      h("p", { class: "hint" }, "Conditions and events are the Kubernetes conditions of the Deployment object and the events about it, newest first (Hearth extensions of the REST API)."),
      h("h2", {}, "Deployed models and LoRAs"),
      table(
        [
          { title: "Deployed model", cell: (m) => shortName(m.name) },
          { title: "Model", cell: (m) => shortName(m.model) },
          { title: "State", cell: (m) => stateBadge(m.state) },
          { title: "Default", cell: (m) => (m.default ? "yes" : "") },
          {
            title: "Actions",
            cell: (m) => action("Unload", ctx.access.change(m.createdBy, "unload"), () => unload(ctx, m, refresh), { class: "danger" }),
          },
        ],
        loras,
        { empty: "Nothing deployed here yet.", rowId: (m) => shortName(m.name) },
      ),
      loadForm(ctx, d, refresh),
    ];
  });
  await refresh();
}

async function unload(ctx, m, refresh) {
  const id = shortName(m.name);
  if (!(await confirmDialog(`Unload ${shortName(m.model)} from this deployment?`, "Unload"))) return;
  try {
    await ctx.api.del(ctx.api.acct(`deployedModels/${encodeURIComponent(id)}`));
    notify(`Unloading ${shortName(m.model)}.`);
  } catch (error) {
    notify(`Unload failed: ${error.message}`);
  }
  await refresh();
}

function loadForm(ctx, d, refresh) {
  const allowed = ctx.access.create();
  if (!d.enableAddons) return null;
  const select = h("select", { id: "lora-model", name: "model" });
  const form = h(
    "form",
    { class: "card" },
    h("label", { for: "lora-model" }, "Load a LoRA of this base model"),
    h("div", { class: "row" }, select, action("Load", allowed, null, { type: "submit" })),
  );
  ctx.api
    .listAll(ctx.api.acct("models"), "models", { filter: 'kind = "HF_PEFT_ADDON"' })
    .then((models) => {
      const fitting = models.filter((m) => m.peftDetails && sameModel(m.peftDetails.baseModel, d.baseModel, ctx.account));
      replace(select, fitting.map((m) => h("option", { value: m.name }, shortName(m.name))));
      if (!fitting.length) replace(select, h("option", { value: "" }, "no LoRA of this base model"));
    })
    .catch((error) => form.appendChild(errorBox(error)));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!select.value) return;
    try {
      await ctx.api.post(ctx.api.acct("deployedModels"), { model: select.value, deployment: d.name });
      notify(`Loading ${shortName(select.value)}.`);
    } catch (error) {
      notify(`Load failed: ${error.message}`);
    }
    await refresh();
  });
  return form;
}

function sameModel(a, b, account) {
  const full = (name) => (name && name.startsWith("accounts/") ? name : `accounts/${account}/models/${name}`);
  return full(a) === full(b);
}

export async function render(ctx, view, id) {
  if (id) return detail(ctx, view, id);
  const body = h("div", {});
  const pager = new Pager(ctx, ctx.api.acct("deployments"), "deployments");
  replace(
    view,
    h("h1", {}, "Deployments"),
    createForm(ctx, (created) => {
      location.hash = `#/deployments/${encodeURIComponent(shortName(created.name))}`;
    }),
    h("h2", {}, "In this account"),
    h("p", { class: "hint" }, "Refreshes by itself every few seconds."),
    body,
  );
  const refresh = live(ctx, body, () => pager.load(), (page) => [
    listView(ctx, page, refresh),
    pager.control(page, refresh),
  ]);
  await refresh();
}
