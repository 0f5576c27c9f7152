// Datasets: upload a JSONL file (create, signed upload URL with a progress bar,
// validateUpload), then the verdict: example count, or the problems by line number.

import { action, confirmDialog, errorBox, h, notify, replace, shortName, stateBadge, table, when } from "../dom.js";
import { Pager } from "../paging.js";
import { put } from "../upload.js";

const REFRESH_MS = 3000;
const FILENAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

/** "2 problem(s): line 2: invalid JSON ...; line 4: no assistant turn" -> [{line, message}] */
export function problemsByLine(message) {
  const found = [];
  const pattern = /line (\d+): (.*?)(?=; line \d+: |$)/g;
  let match;
  while ((match = pattern.exec(message || "")) !== null) {
    found.push({ line: Number(match[1]), message: match[2] });
  }
  return found;
}

function verdict(d) {
  const message = (d.status && d.status.message) || "";
  if (d.state !== "FAILED") return message;
  const problems = problemsByLine(message);
  if (!problems.length) return message;
  return h(
    "div",
    {},
    h("span", {}, message.split(":")[0]),
    h("ol", { class: "problems" }, problems.map((p) => h("li", { "data-line": p.line }, `Line ${p.line}: ${p.message}`))),
  );
}

export async function render(ctx, view) {
  const allowed = ctx.access.create();
  const idInput = h("input", { id: "ds-id", name: "datasetId", required: true, pattern: "[a-z][a-z0-9-]{0,62}", autocomplete: "off" });
  const fileInput = h("input", { id: "ds-file", name: "file", type: "file", accept: ".jsonl,application/jsonl,application/x-ndjson", required: true });
  const format = h("select", { id: "ds-format", name: "format" }, h("option", { value: "CHAT" }, "Chat (messages)"), h("option", { value: "COMPLETION" }, "Completion (prompt, completion)"));
  const progress = h("progress", { id: "ds-progress", max: 100, value: 0, hidden: true, "aria-label": "Upload progress" });
  const step = h("p", { id: "ds-step", class: "hint", "aria-live": "polite" });
  const problems = h("div", {});
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "ds-title" },
    h("h2", { id: "ds-title" }, "Upload a dataset"),
    h("div", { class: "row" },
      h("div", {}, h("label", { for: "ds-id" }, "Dataset ID"), idInput),
      h("div", {}, h("label", { for: "ds-format" }, "Format"), format),
      h("div", {}, h("label", { for: "ds-file" }, "JSONL file"), fileInput)),
    h("p", { class: "hint" }, "One example per line. The gateway validates the file after the upload; problems are listed by line number."),
    h("div", { class: "row" }, action("Upload", allowed, null, { type: "submit", id: "ds-upload" })),
    progress,
    step,
    problems,
  );
  const list = h("div", {});
  replace(view, h("h1", {}, "Datasets"), form, h("h2", {}, "Datasets"), list);

  const pager = new Pager(ctx, ctx.api.acct("datasets"), "datasets");
  let last = null;
  const refresh = async () => {
    if (document.querySelector("dialog[open]")) return;
    try {
      const page = await pager.load();
      const items = page.items;
      const seen = JSON.stringify([page, pager.pages]);
      if (seen === last) return;
      last = seen;
      replace(
        list,
        table(
          [
            { title: "Dataset", cell: (d) => shortName(d.name) },
            { title: "State", key: "state", cell: (d) => stateBadge(d.state) },
            { title: "Format", cell: (d) => d.format || "" },
            { title: "Examples", key: "examples", num: true, cell: (d) => d.exampleCount || "" },
            { title: "Validation", key: "verdict", cell: verdict },
            { title: "Created", cell: (d) => when(d.createTime) },
            { title: "Actions", cell: (d) => action("Delete", ctx.access.change(d.createdBy, "delete"), () => remove(d), { class: "danger" }) },
          ],
          items,
          { empty: "No datasets yet.", rowId: (d) => shortName(d.name) },
        ),
        pager.control(page, refresh),
      );
    } catch (error) {
      last = null;
      replace(list, errorBox(error));
    }
  };
  const remove = async (d) => {
    const id = shortName(d.name);
    if (!(await confirmDialog(`Delete dataset ${id}?`))) return;
    try {
      await ctx.api.del(ctx.api.acct(`datasets/${encodeURIComponent(id)}`));
      notify(`Deleted ${id}.`);
    } catch (error) {
      notify(`Delete failed: ${error.message}`);
    }
    await refresh();
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = fileInput.files[0];
    const id = idInput.value.trim();
    if (!file || !id) return;
    const filename = FILENAME.test(file.name) ? file.name : "data.jsonl";
    const path = ctx.api.acct(`datasets/${encodeURIComponent(id)}`);
    replace(problems);
    progress.hidden = false;
    progress.value = 0;
    try {
      step.textContent = "Creating the dataset…";
      await ctx.api.post(ctx.api.acct("datasets"), { datasetId: id, dataset: { format: format.value, userUploaded: {} } });
      const endpoint = await ctx.api.post(`${path}:getUploadEndpoint`, { filenameToSize: { [filename]: file.size } });
      step.textContent = `Uploading ${file.name}…`;
      await put(endpoint.filenameToSignedUrls[filename], file, (loaded, total) => {
        progress.value = Math.round((loaded / total) * 100);
      });
      progress.value = 100;
      step.textContent = "Uploaded; validating…";
      await ctx.api.post(`${path}:validateUpload`, {});
      await refresh();
      step.textContent = `Uploaded ${file.name}; the gateway validates it (see its row below).`;
      form.reset();
    } catch (error) {
      step.textContent = "";
      replace(problems, errorBox(error));
    }
  });

  ctx.every(REFRESH_MS, refresh);
  await refresh();
}
