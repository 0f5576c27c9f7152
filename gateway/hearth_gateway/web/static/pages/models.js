// Models: base models and LoRA addons (state, base, rank, where deployed); delete.

import { action, confirmDialog, errorBox, h, notify, replace, shortName, stateBadge, table } from "../dom.js";

const REFRESH_MS = 5000;

function kindLabel(m) {
  if (m.kind === "HF_PEFT_ADDON") return "LoRA addon";
  if (m.kind === "HF_BASE_MODEL") return "Base model";
  return m.kind || "";
}

function deployedOn(m) {
  const refs = m.deployedModelRefs || [];
  if (!refs.length) return "";
  return refs.map((r) => `${shortName(r.deployment)}${r.state ? ` (${r.state})` : ""}`).join(", ");
}

export async function render(ctx, view) {
  const body = h("div", {});
  replace(
    view,
    h("h1", {}, "Models"),
    h("p", { class: "hint" }, "Base models and LoRA addons of this account. Refreshes by itself."),
    body,
  );
  let last = null;
  const refresh = async () => {
    if (document.querySelector("dialog[open]")) return;
    try {
      const items = await ctx.api.listAll(ctx.api.acct("models"), "models");
      const seen = JSON.stringify(items);
      if (seen === last) return;
      last = seen;
      replace(
        body,
        table(
          [
            { title: "Model", cell: (m) => h("span", { title: m.name }, shortName(m.name)) },
            { title: "Kind", cell: kindLabel },
            { title: "State", cell: (m) => stateBadge(m.state) },
            { title: "Base model", cell: (m) => (m.peftDetails ? shortName(m.peftDetails.baseModel) : "") },
            { title: "Rank", num: true, cell: (m) => (m.peftDetails && m.peftDetails.r ? String(m.peftDetails.r) : "") },
            { title: "Deployed on", cell: deployedOn },
            { title: "Created by", cell: (m) => m.createdBy || "" },
            {
              title: "Actions",
              cell: (m) => action("Delete", ctx.access.change(m.createdBy, "delete"), () => remove(m), { class: "danger" }),
            },
          ],
          items,
          { empty: "No models in this account.", rowId: (m) => shortName(m.name) },
        ),
      );
    } catch (error) {
      last = null;
      replace(body, errorBox(error));
    }
  };
  const remove = async (m) => {
    const id = shortName(m.name);
    if (!(await confirmDialog(`Delete model ${id}?`))) return;
    try {
      await ctx.api.del(ctx.api.acct(`models/${encodeURIComponent(id)}`));
      notify(`Deleting ${id}.`);
    } catch (error) {
      notify(`Delete failed: ${error.message}`);
    }
    await refresh();
  };
  ctx.every(REFRESH_MS, refresh);
  await refresh();
}
