// Users and roles of the account (paged): everyone may see them; admins add a user and
// change a user's role (the users API: POST .../users?userId=, PATCH .../users/<u>).

import { action, confirmDialog, errorBox, h, notify, replace, shortName, stateBadge, table, when } from "../dom.js";
import { clearFieldErrors, field, showFieldErrors } from "../forms.js";
import { Pager } from "../paging.js";

export const ROLES = ["admin", "user", "contributor", "inference-user"];
const REFRESH_MS = 5000;
const KNOWN = { userId: "userId", "metadata.name": "userId", email: "email", role: "role", displayName: "displayName" };

/** The create-user request: {query, body} (empty fields left out; the role always sent). */
export function userRequest(values) {
  const body = { role: values.role };
  for (const key of ["email", "displayName"]) if (values[key].trim()) body[key] = values[key].trim();
  const query = values.userId.trim() ? { userId: values.userId.trim() } : {};
  return { query, body };
}

function roleSelect(id, value, disabled, label) {
  return h(
    "select",
    { id, name: "role", disabled, "aria-label": label },
    ROLES.map((role) => h("option", { value: role, selected: role === value }, role)),
  );
}

function createForm(ctx, refresh) {
  const allowed = ctx.access.manageUsers();
  const inputs = {
    userId: h("input", { id: "user-new-id", name: "userId", autocomplete: "off", disabled: !allowed.ok }),
    email: h("input", { id: "user-new-email", name: "email", type: "email", autocomplete: "off", disabled: !allowed.ok }),
    displayName: h("input", { id: "user-new-display-name", name: "displayName", autocomplete: "off", disabled: !allowed.ok }),
    role: roleSelect("user-new-role", "user", !allowed.ok, null),
  };
  const general = h("div", {});
  const form = h(
    "form",
    { class: "card", id: "user-create", novalidate: true, "aria-labelledby": "user-create-title" },
    h("h2", { id: "user-create-title" }, "Add a user"),
    h(
      "div",
      { class: "row" },
      field("User ID", inputs.userId, "From the email when empty."),
      field("Email", inputs.email, "Required unless a user ID is given."),
      field("Display name", inputs.displayName, "Optional."),
      field("Role", inputs.role, "Default: user."),
    ),
    general,
    h("p", {}, action("Add user", allowed, null, { type: "submit", id: "user-create-button" })),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFieldErrors(inputs, general);
    const values = Object.fromEntries(Object.entries(inputs).map(([key, input]) => [key, input.value]));
    const { query, body } = userRequest(values);
    try {
      const created = await ctx.api.post(ctx.api.acct("users"), body, query);
      notify(`Added user ${shortName(created.name)} (${created.role}).`);
      form.reset();
      await refresh();
    } catch (error) {
      showFieldErrors(error, inputs, KNOWN, general);
    }
  });
  return form;
}

async function changeRole(ctx, user, role, refresh) {
  const id = shortName(user.name);
  const self = id === ctx.me.id ? " This is you: your next action runs with the new role." : "";
  if (!(await confirmDialog(`Change the role of ${id} from ${user.role} to ${role}?${self}`, "Change role"))) {
    await refresh(true);
    return;
  }
  try {
    await ctx.api.patch(ctx.api.acct(`users/${encodeURIComponent(id)}`), { role });
    notify(`${id} is now ${role}.`);
  } catch (error) {
    notify(`Change failed: ${error.message}`);
  }
  await refresh(true);
}

function roleCell(ctx, user, refresh) {
  const allowed = ctx.access.manageUsers();
  if (!allowed.ok) return user.role; // the reason is said once, above the table
  const id = shortName(user.name);
  const select = roleSelect(`role-${id}`, user.role, !allowed.ok, `Role of ${id}`);
  const apply = action("Change role", allowed, () => {
    if (select.value !== user.role) changeRole(ctx, user, select.value, refresh);
  }, { class: "secondary" });
  return h("div", { class: "actions" }, select, apply);
}

export async function render(ctx, view) {
  const body = h("div", {});
  const pager = new Pager(ctx, ctx.api.acct("users"), "users");
  let last = null;
  const refresh = async (force = false) => {
    if (document.querySelector("dialog[open]")) return;
    // A role picked but not yet applied must not be reset by the timer.
    if (!force && body.querySelector("select[data-changed]")) return;
    try {
      const page = await pager.load();
      const seen = JSON.stringify([page, pager.pages]);
      if (seen === last && !force) return;
      last = seen;
      replace(
        body,
        table(
          [
            { title: "User", cell: (u) => shortName(u.name) },
            { title: "Email", cell: (u) => u.email || "" },
            { title: "Display name", cell: (u) => u.displayName || "" },
            { title: "State", cell: (u) => stateBadge(u.state) },
            { title: "Created", cell: (u) => when(u.createTime) },
            { title: "Role", key: "role", cell: (u) => roleCell(ctx, u, refresh) },
          ],
          page.items,
          { empty: "No users.", rowId: (u) => shortName(u.name) },
        ),
        pager.control(page, refresh),
      );
      for (const select of body.querySelectorAll("select[name=role]")) {
        select.addEventListener("change", () => select.setAttribute("data-changed", ""));
      }
    } catch (error) {
      last = null;
      replace(body, errorBox(error));
    }
  };
  replace(
    view,
    h("h1", {}, "Users and roles"),
    createForm(ctx, () => refresh(true)),
    h("h2", {}, "Users of this account"),
    ctx.access.manageUsers().ok
      ? h("p", { class: "hint" }, "Pick a role, then Change role.")
      : h("p", { class: "why", id: "users-why" }, ctx.access.manageUsers().why),
    body,
  );
  ctx.every(REFRESH_MS, () => refresh());
  await refresh();
}
