// API keys: create (the key is shown once, with a copy button), list, revoke.
// Admins may pick another user; everyone else manages its own keys. The list is paged.

import { action, confirmDialog, errorBox, h, notify, replace, stateBadge, table, when } from "../dom.js";
import { Pager } from "../paging.js";
import { keyPrefix, loadSession } from "../session.js";

async function copy(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No clipboard API (a page not served over HTTPS or localhost): copy the selection.
    input.select();
    return document.execCommand("copy");
  }
}

/** The new key, shown once: it lives only in this box until it is dismissed. */
function shownOnce(created, onDone) {
  const input = h("input", { id: "new-key", class: "mono", readonly: true, value: created.key, size: 50, "aria-label": "New API key" });
  const box = h(
    "div",
    { class: "secret", role: "region", "aria-label": "New API key" },
    h("strong", {}, "Copy this key now: it is shown only once."),
    input,
    h("button", {
      type: "button",
      id: "copy-key",
      onclick: async () => notify((await copy(created.key, input)) ? "Key copied." : "Copy failed: select the key and copy it."),
    }, "Copy"),
    h("button", {
      type: "button",
      class: "secondary",
      id: "dismiss-key",
      onclick: () => {
        input.value = "";
        box.remove();
        onDone();
      },
    }, "Done"),
  );
  return box;
}

export async function render(ctx, view) {
  const isAdmin = ctx.access.has("manage-others-keys");
  let userId = ctx.me.id;
  const list = h("div", {});
  const secretSlot = h("div", {});
  const nameInput = h("input", { id: "key-name", name: "displayName", placeholder: "default" });
  const allowed = userId === ctx.me.id ? ctx.access.ownKeys() : { ok: isAdmin, why: "" };
  const createForm = h(
    "form",
    { class: "card", "aria-labelledby": "create-key-title" },
    h("h2", { id: "create-key-title" }, "Create an API key"),
    h("label", { for: "key-name" }, "Display name"),
    h("div", { class: "row" }, nameInput, action("Create key", allowed, null, { type: "submit", id: "create-key" })),
  );
  const keysPath = () => ctx.api.acct(`users/${encodeURIComponent(userId)}/apiKeys`);
  const keysPager = () => new Pager(ctx, keysPath(), "apiKeys");
  let pager = keysPager();
  let userPicker = null;
  if (isAdmin) {
    const users = await ctx.api.listAll(ctx.api.acct("users"), "users");
    userPicker = h(
      "select",
      { id: "key-user", onchange: () => { userId = userPicker.value; pager = keysPager(); refresh(); } },
      users.map((u) => {
        const id = u.name.split("/").pop();
        return h("option", { value: id, selected: id === userId }, `${id}${u.email ? ` (${u.email})` : ""}`);
      }),
    );
  }
  replace(
    view,
    h("h1", {}, "API keys"),
    userPicker ? h("div", {}, h("label", { for: "key-user" }, "Keys of user"), userPicker) : h("p", { class: "hint" }, `Your keys (user ${ctx.me.id}).`),
    createForm,
    secretSlot,
    h("h2", {}, "Keys"),
    list,
  );

  const refresh = async () => {
    try {
      const page = await pager.load();
      const keys = page.items;
      const mine = keyPrefix((loadSession() || {}).key || "");
      replace(
        list,
        table(
          [
            { title: "Name", cell: (k) => k.displayName || "" },
            { title: "Key ID", cell: (k) => h("code", {}, k.keyId) },
            { title: "Prefix", cell: (k) => h("code", {}, `${k.prefix || ""}…`) },
            { title: "State", cell: (k) => stateBadge(k.state) },
            { title: "Created", cell: (k) => when(k.createTime) },
            { title: "Expires", cell: (k) => (k.expireTime ? when(k.expireTime) : "never") },
            { title: "", cell: (k) => (k.prefix && k.prefix === mine ? h("span", { class: "muted" }, "this session") : "") },
            { title: "Actions", cell: (k) => action("Revoke", allowed, () => revoke(k, k.prefix === mine), { class: "danger" }) },
          ],
          keys,
          { empty: "No keys.", rowId: (k) => k.keyId },
        ),
        pager.control(page, refresh),
      );
    } catch (error) {
      replace(list, errorBox(error));
    }
  };

  const revoke = async (k, current) => {
    const warning = current ? " This is the key you are signed in with: the console will sign you out." : "";
    if (!(await confirmDialog(`Revoke key ${k.displayName || k.keyId} (${k.keyId})? Programs using it stop working.${warning}`, "Revoke"))) return;
    try {
      await ctx.api.post(`${keysPath()}:delete`, { keyId: k.keyId });
      notify(`Revoked ${k.keyId}.`);
      if (current) {
        ctx.signOut(`You revoked the key this session used (${k.keyId}); the gateway refuses it now.`);
        return;
      }
    } catch (error) {
      notify(`Revoke failed: ${error.message}`);
    }
    await refresh();
  };

  createForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const created = await ctx.api.post(keysPath(), { apiKey: { displayName: nameInput.value.trim() || undefined } });
      nameInput.value = "";
      replace(secretSlot, shownOnce(created, () => replace(secretSlot)));
      ctx.onLeave(() => replace(secretSlot));
      document.getElementById("copy-key").focus();
    } catch (error) {
      replace(secretSlot, errorBox(error));
    }
    await refresh();
  });
  await refresh();
}
