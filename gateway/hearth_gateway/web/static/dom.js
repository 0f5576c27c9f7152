// Building the page: every value from the API goes in as text (never as HTML).

/**
 * h("button", {class: "danger", onclick: fn, disabled: true}, "Delete")
 * Attributes: `on<event>` functions become listeners; booleans set or drop the attribute;
 * `value` sets the property; null/undefined are skipped. Children: nodes, strings, numbers,
 * arrays of those, or null (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (name === "value") {
      node.value = value;
    } else if (value === true) {
      node.setAttribute(name, "");
    } else {
      node.setAttribute(name, String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
}

export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** A table: columns are {title, cell(row) -> node|string, num?}; `empty` when no rows. */
export function table(columns, rows, { caption, empty = "Nothing here yet.", rowId } = {}) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      caption ? h("caption", { class: "hint" }, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.title)))),
      h(
        "tbody",
        {},
        rows.map((row) =>
          h(
            "tr",
            { "data-id": rowId ? rowId(row) : null },
            columns.map((c) => h("td", { class: c.num ? "num" : null, "data-col": c.key || null }, c.cell(row))),
          ),
        ),
      ),
    ),
  );
}

const GOOD = new Set(["READY", "DEPLOYED", "JOB_STATE_COMPLETED", "UNSUSPENDED"]);
const BAD = new Set(["FAILED", "EXPIRED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "UNDEPLOYING", "DELETING"]);

export function stateBadge(state) {
  const cls = GOOD.has(state) ? "state good" : BAD.has(state) ? "state bad" : "state";
  return h("span", { class: cls }, (state || "UNKNOWN").replace(/^JOB_STATE_/, ""));
}

/** A button that is disabled, with the reason shown next to it, when `allowed` says no. */
export function action(label, allowed, onclick, attrs = {}) {
  const reason = allowed.ok ? null : allowed.why;
  const id = reason ? `why-${Math.random().toString(36).slice(2, 10)}` : null;
  const button = h(
    "button",
    { type: "button", ...attrs, disabled: !allowed.ok, title: reason, "aria-describedby": id, onclick },
    label,
  );
  if (!reason) return button;
  return h("span", {}, button, h("span", { class: "why", id }, reason));
}

export function notify(message) {
  const region = document.getElementById("status");
  const note = h("div", {}, message);
  region.replaceChildren(note);
  setTimeout(() => note.remove(), 6000);
}

export function errorBox(error) {
  const status = error && error.status ? `HTTP ${error.status}: ` : "";
  return h("div", { class: "error", role: "alert" }, status + (error && error.message ? error.message : String(error)));
}

/** A modal confirmation; resolves true when confirmed. */
export function confirmDialog(message, confirmLabel = "Delete") {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { "aria-label": "Confirm" },
      h("p", {}, message),
      h(
        "div",
        { class: "buttons" },
        h("button", { type: "button", class: "secondary", onclick: () => dialog.close("cancel") }, "Cancel"),
        h("button", { type: "button", class: "danger", onclick: () => dialog.close("ok") }, confirmLabel),
      ),
    );
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "ok");
    });
    document.body.appendChild(dialog);
    dialog.showModal();
  });
}

/** A modal form dialog; resolves the FormData on submit, null on cancel. */
export function formDialog(title, fields, submitLabel) {
  return new Promise((resolve) => {
    const form = h(
      "form",
      { method: "dialog" },
      h("h2", {}, title),
      fields,
      h(
        "div",
        { class: "buttons" },
        h("button", { type: "button", class: "secondary", onclick: () => dialog.close("cancel") }, "Cancel"),
        h("button", { type: "submit", value: "ok" }, submitLabel),
      ),
    );
    const dialog = h("dialog", { "aria-label": title }, form);
    let data = null;
    form.addEventListener("submit", () => {
      data = new FormData(form);
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "ok" ? data : null);
    });
    document.body.appendChild(dialog);
    dialog.showModal();
  });
}

export function shortName(name) {
  return (name || "").split("/").pop();
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** Field list: pairs of [label, value]; empty values are left out. */
export function fields(pairs) {
  return h(
    "dl",
    { class: "fields" },
    pairs
      .filter(([, value]) => value !== undefined && value !== null && value !== "")
      .map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]),
  );
}
