// Models: base models and LoRA addons (state, base, rank, where deployed; paged); create
// one from a URI (a base model, or a LoRA addon of a base model), or upload a PEFT
// adapter's files from the browser; delete.

import { action, confirmDialog, errorBox, h, notify, replace, shortName, stateBadge, table } from "../dom.js";
import { clearFieldErrors, field, showFieldErrors } from "../forms.js";
import { Pager } from "../paging.js";
import { put } from "../upload.js";

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

/** The create-model request from the form's values (strings); LoRA fields only for a LoRA. */
export function modelRequest(values) {
  const model = { kind: values.kind, source: { uri: values.uri.trim() } };
  if (values.displayName.trim()) model.displayName = values.displayName.trim();
  if (values.kind === "HF_PEFT_ADDON") {
    const rank = Number(values.rank);
    model.peftDetails = { baseModel: values.baseModel, r: Number.isFinite(rank) && values.rank.trim() ? rank : values.rank };
  }
  return { modelId: values.modelId.trim(), model };
}

/** Where a 400's field names point on the form. */
const KNOWN = {
  modelId: "modelId",
  "metadata.name": "modelId",
  "model.source": "uri",
  source: "uri",
  huggingFaceUrl: "uri",
  kind: "kind",
  displayName: "displayName",
  "peftDetails.baseModel": "baseModel",
  "peftDetails.r": "rank",
  peftDetails: "baseModel",
};

function createForm(ctx, refresh) {
  const allowed = ctx.access.create();
  const inputs = {
    modelId: h("input", { id: "model-id", name: "modelId", autocomplete: "off", required: true }),
    kind: h(
      "select",
      { id: "model-kind", name: "kind" },
      h("option", { value: "HF_BASE_MODEL" }, "Base model"),
      h("option", { value: "HF_PEFT_ADDON" }, "LoRA addon"),
    ),
    uri: h("input", { id: "model-uri", name: "uri", autocomplete: "off", required: true }),
    displayName: h("input", { id: "model-display-name", name: "displayName", autocomplete: "off" }),
    baseModel: h("select", { id: "model-base", name: "baseModel" }),
    rank: h("input", { id: "model-rank", name: "rank", type: "number", step: 1, value: "8" }),
  };
  const loraFields = h(
    "fieldset",
    { hidden: true },
    h("legend", {}, "LoRA addon"),
    h(
      "div",
      { class: "row" },
      field("Base model of the LoRA", inputs.baseModel, "The model the adapter was trained on."),
      field("LoRA rank", inputs.rank, "r of the adapter, 4-64."),
    ),
  );
  inputs.kind.addEventListener("change", () => {
    loraFields.hidden = inputs.kind.value !== "HF_PEFT_ADDON";
  });
  const general = h("div", {});
  const form = h(
    "form",
    { id: "model-create", novalidate: true },
    h(
      "div",
      { class: "row" },
      field("Model ID", inputs.modelId, "Lowercase letters, digits and -."),
      field("Kind", inputs.kind, ""),
      field("Weights URI", inputs.uri, "hf://org/repo, pvc://artifacts/path, file:// or builtin://"),
      field("Display name", inputs.displayName, "Optional."),
    ),
    loraFields,
    general,
    h("p", {}, action("Create model", allowed, null, { type: "submit", id: "model-create-button" })),
  );
  const details = h("details", { class: "card", id: "model-create-box" }, h("summary", {}, "Add a model from a URI"), form);
  loadBaseModelsOnOpen(ctx, details, inputs.baseModel, general);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFieldErrors(inputs, general);
    const values = Object.fromEntries(Object.entries(inputs).map(([key, input]) => [key, input.value]));
    try {
      const created = await ctx.api.post(ctx.api.acct("models"), modelRequest(values));
      notify(`Created model ${shortName(created.name)}.`);
      form.reset();
      loraFields.hidden = true;
      await refresh();
    } catch (error) {
      showFieldErrors(error, inputs, KNOWN, general);
    }
  });
  return details;
}

/** The files a PEFT LoRA adapter is uploaded as (what PEFT's save_pretrained writes). */
export const ADAPTER_FILES = ["adapter_config.json", "adapter_model.safetensors"];

/** What is wrong with the chosen files before anything is sent; "" when nothing. */
export function adapterFilesProblem(names) {
  const missing = ADAPTER_FILES.filter((name) => !names.includes(name));
  if (missing.length) return `Choose ${ADAPTER_FILES.join(" and ")}; missing: ${missing.join(", ")}.`;
  const extra = names.filter((name) => !ADAPTER_FILES.includes(name));
  return extra.length ? `Only ${ADAPTER_FILES.join(" and ")} are uploaded; remove ${extra.join(", ")}.` : "";
}

/**
 * Upload a PEFT adapter: create the model with no source (it waits, UPLOADING, for its
 * files), ask for signed URLs (:getUploadEndpoint), PUT each file, then :validateUpload,
 * which checks the files and creates the Model. A model still UPLOADING from an earlier
 * try is deleted and created again, so a corrected rank or base model takes effect.
 */
async function uploadAdapter(ctx, values, files, onStep, onProgress) {
  const id = values.modelId.trim();
  const path = ctx.api.acct(`models/${encodeURIComponent(id)}`);
  onStep("Creating the model…");
  const rank = Number(values.rank);
  const model = { kind: "HF_PEFT_ADDON", peftDetails: { baseModel: values.baseModel, r: values.rank.trim() && Number.isFinite(rank) ? rank : values.rank } };
  const create = () => ctx.api.post(ctx.api.acct("models"), { modelId: id, model });
  try {
    await create();
  } catch (error) {
    // A model still waiting for its files from an earlier try: start again from this
    // form's base model and rank (deleting a waiting model removes its files).
    const waiting = error.status === 409 && (await ctx.api.get(path)).state === "UPLOADING";
    if (!waiting) throw error;
    await ctx.api.del(path);
    await create();
  }
  onStep("Asking for upload URLs…");
  const sizes = Object.fromEntries(files.map((f) => [f.name, String(f.size)]));
  const { filenameToSignedUrls: urls = {} } = await ctx.api.post(`${path}:getUploadEndpoint`, { filenameToSize: sizes });
  const total = files.reduce((sum, f) => sum + f.size, 0) || 1;
  let done = 0;
  for (const file of files) {
    onStep(`Uploading ${file.name}…`);
    await put(urls[file.name], file, (loaded) => onProgress((done + loaded) / total));
    done += file.size;
    onProgress(done / total);
  }
  onStep("Uploaded; the gateway checks the files…");
  return ctx.api.get(`${path}:validateUpload`);
}

function uploadForm(ctx, refresh) {
  const allowed = ctx.access.create();
  const inputs = {
    modelId: h("input", { id: "up-model-id", name: "modelId", autocomplete: "off", required: true }),
    baseModel: h("select", { id: "up-base", name: "baseModel" }),
    rank: h("input", { id: "up-rank", name: "rank", type: "number", step: 1, value: "8" }),
    files: h("input", { id: "up-files", name: "files", type: "file", multiple: true, accept: ".json,.safetensors" }),
  };
  const progress = h("progress", { id: "up-progress", max: 100, value: 0, hidden: true, "aria-label": "Adapter upload progress" });
  const step = h("p", { id: "up-step", class: "hint", "aria-live": "polite" });
  const general = h("div", {});
  const form = h(
    "form",
    { id: "adapter-upload", novalidate: true },
    h(
      "div",
      { class: "row" },
      field("LoRA model ID", inputs.modelId, "Lowercase letters, digits and -."),
      field("Base model of the adapter", inputs.baseModel, "The model it was trained on."),
      field("Adapter rank", inputs.rank, "r in adapter_config.json."),
      field("Adapter files", inputs.files, `${ADAPTER_FILES.join(" and ")}, as PEFT saves them.`),
    ),
    general,
    h("p", {}, action("Upload adapter", allowed, null, { type: "submit", id: "up-submit" })),
    progress,
    step,
  );
  const details = h("details", { class: "card", id: "adapter-upload-box" }, h("summary", {}, "Upload a PEFT LoRA adapter"), form);
  loadBaseModelsOnOpen(ctx, details, inputs.baseModel, general);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFieldErrors(inputs, general);
    const files = [...inputs.files.files];
    const problem = adapterFilesProblem(files.map((f) => f.name));
    if (problem) {
      showFieldErrors({ status: 400, message: `files: ${problem}` }, inputs, { files: "files" }, general);
      return;
    }
    const values = { modelId: inputs.modelId.value, baseModel: inputs.baseModel.value, rank: inputs.rank.value };
    const submit = form.querySelector("#up-submit");
    submit.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    try {
      const answer = await uploadAdapter(ctx, values, files, (text) => replace(step, text), (fraction) => {
        progress.value = Math.round(fraction * 100);
      });
      const warnings = (answer && answer.warnings) || [];
      replace(step, `Model ${values.modelId.trim()} created from the uploaded adapter.${warnings.length ? ` Warnings: ${warnings.join("; ")}` : ""}`);
      notify(`Uploaded ${values.modelId.trim()}.`);
      await refresh();
    } catch (error) {
      replace(step, "The upload did not complete; fix what is said and upload again.");
      showFieldErrors(error, inputs, KNOWN_UPLOAD, general);
    } finally {
      submit.disabled = !allowed.ok;
    }
  });
  return details;
}

const KNOWN_UPLOAD = { modelId: "modelId", "metadata.name": "modelId", "peftDetails.baseModel": "baseModel", "peftDetails.r": "rank", peftDetails: "baseModel" };

export async function render(ctx, view) {
  const body = h("div", {});
  const pager = new Pager(ctx, ctx.api.acct("models"), "models");
  let last = null;
  const refresh = async () => {
    if (document.querySelector("dialog[open]")) return;
    try {
      const page = await pager.load();
      const seen = JSON.stringify([page, pager.pages]);
      if (seen === last) return;
      last = seen;
      replace(
        body,
        table(
          [
            { title: "Model", cell: (m) => h("span", { title: m.name }, shortName(m.name)) },
            { title: "Kind", cell: kindLabel },
            { title: "State", key: "state", cell: (m) => stateBadge(m.state) },
            { title: "Base model", cell: (m) => (m.peftDetails ? shortName(m.peftDetails.baseModel) : "") },
            { title: "Rank", num: true, cell: (m) => (m.peftDetails && m.peftDetails.r ? String(m.peftDetails.r) : "") },
            { title: "Deployed on", cell: deployedOn },
            { title: "Created by", cell: (m) => m.createdBy || "" },
            {
              title: "Actions",
              cell: (m) => action("Delete", ctx.access.change(m.createdBy, "delete"), () => remove(m), { class: "danger" }),
            },
          ],
          page.items,
          { empty: "No models in this account.", rowId: (m) => shortName(m.name) },
        ),
        pager.control(page, refresh),
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
  replace(
    view,
    h("h1", {}, "Models"),
    createForm(ctx, refresh),
    uploadForm(ctx, refresh),
    h("h2", {}, "In this account"),
    h("p", { class: "hint" }, "Base models and LoRA addons of this account. Refreshes by itself."),
    body,
  );
  ctx.every(REFRESH_MS, refresh);
  await refresh();
}

// Both forms pick a base model: the list is read the first time a form is opened.
function loadBaseModelsOnOpen(ctx, details, select, general) {
  details.addEventListener("toggle", () => {
    if (!details.open || select.options.length) return;
    ctx.api
      .listAll(ctx.api.acct("models"), "models", { filter: 'kind = "HF_BASE_MODEL"' })
      .then((bases) => replace(select, bases.map((m) => h("option", { value: m.name }, shortName(m.name)))))
      .catch((error) => replace(general, errorBox(error)));
  });
}
