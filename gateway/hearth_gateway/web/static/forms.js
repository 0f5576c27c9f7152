// Forms over the REST API: an API error's message split into the fields it names, shown
// next to those fields. Pure apart from `showFieldErrors`, which only touches the form.

import { errorBox, h, replace } from "./dom.js";

/** A field path as the API words it: spec.x.y, deployment.x, model.x, or a bare x.y. */
const PATH = /(?<=^|[\s;:(])((?:spec|metadata|deployment|model|user|supervisedFineTuningJob)\.)?([A-Za-z][\w]*(?:\.[\w]+)*): /g;

/**
 * Split an API error message into {field: text} for the fields `known` names (a map from
 * a path as the API words it to the form's field key), and `rest` for what names none.
 * A path below a known one (autoscalingPolicy.loadTargets.default) goes to the known one.
 *   fieldErrors("Deployment 'd' is invalid: spec.a: bad; spec.b.c: worse", {a: "a", b: "b"})
 *   -> {fields: {a: "bad", b: "worse"}, rest: ""}
 */
export function fieldErrors(message, known) {
  const hits = [];
  for (const match of message.matchAll(PATH)) {
    const path = match[2];
    const key = knownKey(path, known, match[1] || "");
    if (key === null) continue;
    hits.push({ key, start: match.index, textStart: match.index + match[0].length });
  }
  const fields = {};
  for (const [i, hit] of hits.entries()) {
    const end = i + 1 < hits.length ? hits[i + 1].start : message.length;
    const text = message.slice(hit.textStart, end).replace(/[;\s]+$/, "");
    fields[hit.key] = fields[hit.key] ? `${fields[hit.key]}; ${text}` : text;
  }
  const rest = hits.length ? message.slice(0, hits[0].start).replace(/[:\s]+$/, "") : message;
  return { fields, rest: hits.length && /is invalid$/.test(rest) ? "" : rest };
}

function knownKey(path, known, prefix) {
  const parts = path.split(".");
  for (let n = parts.length; n > 0; n--) {
    const candidate = parts.slice(0, n).join(".");
    if (Object.hasOwn(known, prefix + candidate)) return known[prefix + candidate];
    if (Object.hasOwn(known, candidate)) return known[candidate];
  }
  return null;
}

/**
 * Show an API error on a form: each field's message under its input (aria-invalid, tied
 * by aria-describedby), the rest in `general`; focus the first field at fault.
 * `inputs` maps a field key to its input; the error element is `<input id>-error`.
 */
export function showFieldErrors(error, inputs, known, general) {
  clearFieldErrors(inputs, general);
  const message = error && error.message ? error.message : String(error);
  const { fields, rest } = error && error.status === 400 ? fieldErrors(message, known) : { fields: {}, rest: message };
  let first = null;
  for (const [key, input] of Object.entries(inputs)) {
    if (!Object.hasOwn(fields, key)) continue;
    const slot = document.getElementById(`${input.id}-error`);
    if (slot) replace(slot, fields[key]);
    input.setAttribute("aria-invalid", "true");
    first = first || input; // the first at fault in the form's order
  }
  if (rest || !first) replace(general, errorBox(rest ? { status: error.status, message: rest } : error));
  if (first) first.focus();
}

export function clearFieldErrors(inputs, general) {
  replace(general);
  for (const input of Object.values(inputs)) {
    input.removeAttribute("aria-invalid");
    const slot = document.getElementById(`${input.id}-error`);
    if (slot) replace(slot);
  }
}

/** A labelled field: label, input, a hint (defaults and rules) and its error slot. */
export function field(label, input, hint = "") {
  const hintId = `${input.id}-hint`;
  const errorId = `${input.id}-error`;
  input.setAttribute("aria-describedby", `${hint ? `${hintId} ` : ""}${errorId}`);
  return h(
    "div",
    { class: "field" },
    h("label", { for: input.id }, label),
    input,
    hint ? h("span", { class: "hint", id: hintId }, hint) : null,
    h("span", { class: "field-error", id: errorId, role: "alert" }),
  );
}
