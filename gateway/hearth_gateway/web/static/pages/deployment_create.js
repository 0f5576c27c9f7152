// Create a deployment with Fireworks' fields. The defaults shown are the server's own: a
// dry run (`?validateOnly=true`) of a deployment that sets only its base model returns it
// as the API would store it, defaults applied. Fields left empty are not sent (the server
// applies the same defaults); the API's 400s are shown next to the fields they name.

import { action, errorBox, h, notify, replace, shortName } from "../dom.js";
import { clearFieldErrors, field, showFieldErrors } from "../forms.js";

export const ACCELERATOR_TYPES = [
  "CPU", "NVIDIA_A100_80GB", "NVIDIA_H100_80GB", "NVIDIA_H200_141GB", "NVIDIA_B200_180GB",
  "NVIDIA_B300_288GB", "NVIDIA_A100_40GB", "NVIDIA_A10G_24GB", "NVIDIA_L4_24GB",
  "AMD_MI300X_192GB", "AMD_MI325X_256GB", "AMD_MI350X_288GB",
];
export const PRECISIONS = [
  "FP16", "BF16", "FP8", "FP8_MM", "FP8_AR", "FP8_MM_KV_ATTN", "FP8_KV", "FP8_MM_V2", "FP8_V2",
  "FP8_MM_KV_ATTN_V2", "NF4", "FP4", "FP4_BLOCKSCALED_MM", "FP4_MX_MOE",
  "INT8", "INT4", // Hearth extensions: CPU replicas of the HEARTH engine
];

/**
 * The form's fields: key (the body path), label, kind, rule shown with the default.
 * `kind`: text | int | number | select | bool.
 */
export const FIELDS = [
  { key: "baseModel", label: "Base model", kind: "select", rule: "Required: the model every replica serves." },
  { key: "displayName", label: "Display name", kind: "text", rule: "Under 64 characters." },
  { key: "acceleratorType", label: "Accelerator type", kind: "select", options: ACCELERATOR_TYPES, rule: "CPU runs the model without a GPU." },
  { key: "acceleratorCount", label: "Accelerators per replica", kind: "int", rule: "0 for CPU.", fallback: "estimated for the model" },
  { key: "precision", label: "Precision", kind: "select", options: PRECISIONS, blank: "the model's default", rule: "LoRA addons need BF16, FP16, INT8 or INT4." },
  { key: "minReplicaCount", label: "Min replicas", kind: "int", rule: "0 scales to zero when idle." },
  { key: "maxReplicaCount", label: "Max replicas", kind: "int", rule: "At least min.", fallback: "max(min, 1)" },
  { key: "autoscalingPolicy.scaleUpWindow", label: "Scale-up window", kind: "text", rule: "A duration, at most 1h." },
  { key: "autoscalingPolicy.scaleDownWindow", label: "Scale-down window", kind: "text", rule: "A duration, at most 1h." },
  { key: "autoscalingPolicy.scaleToZeroWindow", label: "Scale-to-zero window", kind: "text", rule: "At least 5m; used when min is 0." },
  { key: "autoscalingPolicy.loadTargets.default", label: "Load target", kind: "number", rule: "Fraction of a replica's capacity, 0-1." },
  { key: "enableAddons", label: "Enable LoRA addons", kind: "bool", rule: "Serve LoRAs of the base model (multi-LoRA)." },
  { key: "maxPeftRank", label: "Max LoRA rank", kind: "int", rule: "Largest LoRA rank it loads." },
  { key: "numPeftDeviceCached", label: "LoRAs kept on the accelerator", kind: "int", rule: "" },
  { key: "maxContextLength", label: "Max context length", kind: "int", rule: "0 is the model's own." },
];

const inputId = (key) => `dep-${key.replace(/\./g, "-")}`;

export function valueAt(object, path) {
  return path.split(".").reduce((node, part) => (node && typeof node === "object" ? node[part] : undefined), object);
}

function setAt(object, path, value) {
  const parts = path.split(".");
  let node = object;
  for (const part of parts.slice(0, -1)) node = node[part] = node[part] || {};
  node[parts[parts.length - 1]] = value;
}

/**
 * The request body from the form's values ({key: string | boolean}): empty fields are
 * left out; numbers that do not parse are sent as typed, so the API names the field.
 */
export function deploymentBody(values) {
  const body = {};
  for (const f of FIELDS) {
    const raw = values[f.key];
    if (f.kind === "bool") {
      if (raw !== undefined) setAt(body, f.key, Boolean(raw));
      continue;
    }
    const text = typeof raw === "string" ? raw.trim() : "";
    if (text === "") continue;
    const number = Number(text);
    const numeric = f.kind === "int" || f.kind === "number";
    setAt(body, f.key, numeric && Number.isFinite(number) ? number : text);
  }
  return body;
}

/** The hint under a field: its default (from the dry run) and its rule. */
export function hintFor(f, defaults) {
  const value = defaults ? valueAt(defaults, f.key) : undefined;
  const shown = value === undefined ? f.fallback || (f.blank ? f.blank : "") : f.kind === "bool" ? (value ? "on" : "off") : String(value);
  return [shown ? `Default: ${shown}.` : "", f.rule].filter(Boolean).join(" ");
}

function makeInput(f) {
  const id = inputId(f.key);
  if (f.kind === "bool") return h("input", { id, type: "checkbox", name: f.key });
  if (f.kind === "select") {
    const options = (f.options || []).map((o) => h("option", { value: o }, o));
    return h("select", { id, name: f.key }, f.blank ? h("option", { value: "" }, `(${f.blank})`) : null, options);
  }
  const attrs = { id, name: f.key, autocomplete: "off" };
  if (f.kind === "int") Object.assign(attrs, { type: "number", step: 1, inputmode: "numeric" });
  if (f.kind === "number") Object.assign(attrs, { type: "number", step: "any", inputmode: "decimal" });
  return h("input", attrs);
}

function fill(input, f, defaults) {
  const value = defaults ? valueAt(defaults, f.key) : undefined;
  if (value === undefined || value === null) return;
  if (f.kind === "bool") input.checked = Boolean(value);
  else if (f.kind === "select" && f.key !== "baseModel") input.value = String(value);
  else if (f.kind !== "select") input.value = String(value);
}

/** The create form, in a <details> so the list stays in view; `after(created)` on success. */
export function createForm(ctx, after) {
  const allowed = ctx.access.create();
  const inputs = {};
  for (const f of FIELDS) inputs[f.key] = makeInput(f);
  const idInput = h("input", { id: "dep-id", name: "deploymentId", pattern: "[a-z][a-z0-9-]{0,62}", autocomplete: "off" });
  inputs.deploymentId = idInput;
  const known = { deploymentId: "deploymentId", "metadata.name": "deploymentId" };
  for (const f of FIELDS) known[f.key] = f.key;
  const general = h("div", {});
  const hints = {};
  const box = (f) => {
    const wrapped = field(f.label, inputs[f.key], " ");
    hints[f.key] = wrapped.querySelector(".hint");
    return wrapped;
  };
  const byKey = Object.fromEntries(FIELDS.map((f) => [f.key, f]));
  const group = (legend, keys) => h("fieldset", {}, h("legend", {}, legend), h("div", { class: "row" }, keys.map((k) => box(byKey[k]))));
  const form = h(
    "form",
    { id: "deployment-create", novalidate: true },
    h("div", { class: "row" }, field("Deployment ID", idInput, "Lowercase letters, digits and -; random when empty."), box(byKey.baseModel), box(byKey.displayName)),
    group("Hardware", ["acceleratorType", "acceleratorCount", "precision"]),
    group("Replicas and autoscaling", ["minReplicaCount", "maxReplicaCount", "autoscalingPolicy.scaleUpWindow", "autoscalingPolicy.scaleDownWindow", "autoscalingPolicy.scaleToZeroWindow", "autoscalingPolicy.loadTargets.default"]),
    group("LoRA addons and context", ["enableAddons", "maxPeftRank", "numPeftDeviceCached", "maxContextLength"]),
    general,
    h("p", {}, action("Create deployment", allowed, null, { type: "submit", id: "dep-create" })),
  );
  const details = h("details", { class: "card", id: "deployment-create-box" }, h("summary", {}, "Create a deployment"), form);

  const showDefaults = (defaults) => {
    for (const f of FIELDS) {
      replace(hints[f.key], hintFor(f, defaults));
      fill(inputs[f.key], f, defaults);
    }
  };
  showDefaults(null);
  let prepared = false;
  details.addEventListener("toggle", async () => {
    if (!details.open || prepared) return;
    prepared = true;
    try {
      const models = await ctx.api.listAll(ctx.api.acct("models"), "models");
      replace(inputs.baseModel, models.map((m) => h("option", { value: m.name }, `${shortName(m.name)}${m.kind === "HF_PEFT_ADDON" ? " (LoRA, merged)" : ""}`)));
      if (!allowed.ok || !models.length) return;
      const dryRun = await ctx.api.post(ctx.api.acct("deployments"), { baseModel: models[0].name }, { validateOnly: "true" });
      showDefaults(dryRun);
      form.dataset.defaults = "server";
    } catch (error) {
      replace(general, errorBox(error));
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFieldErrors(inputs, general);
    const values = {};
    for (const f of FIELDS) values[f.key] = f.kind === "bool" ? inputs[f.key].checked : inputs[f.key].value;
    const query = idInput.value.trim() ? { deploymentId: idInput.value.trim() } : {};
    try {
      const created = await ctx.api.post(ctx.api.acct("deployments"), deploymentBody(values), query);
      notify(`Creating deployment ${shortName(created.name)}.`);
      after(created);
    } catch (error) {
      showFieldErrors(error, inputs, known, general);
    }
  });
  return details;
}
