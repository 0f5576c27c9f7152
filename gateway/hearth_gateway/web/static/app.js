// The Hearth console: sign in, pick the account, then one page per section (hash routes).

import { Access } from "./access.js";
import { Api, DEFAULT_PAGE_SIZE } from "./api.js";
import { errorBox, h, replace } from "./dom.js";
import { clearSession, findMe, loadSession, saveSession } from "./session.js";

const PAGES = [
  { path: "deployments", title: "Deployments", load: () => import("./pages/deployments.js") },
  { path: "models", title: "Models", load: () => import("./pages/models.js") },
  { path: "api-keys", title: "API keys", load: () => import("./pages/apikeys.js") },
  { path: "playground", title: "Playground", load: () => import("./pages/playground.js") },
  { path: "datasets", title: "Datasets", load: () => import("./pages/datasets.js") },
  { path: "fine-tuning", title: "Fine-tuning", load: () => import("./pages/finetuning.js") },
  { path: "usage", title: "Usage", load: () => import("./pages/usage.js") },
  { path: "users", title: "Users", load: () => import("./pages/users.js") },
];

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");

/** The signed-in state; null when signed out. */
let ctx = null;
/** What the page on screen must stop when left (timers, streams). */
let leaving = [];

function leavePage() {
  for (const stop of leaving) stop();
  leaving = [];
}

/** Helpers each page gets: run `fn` every `ms` while the page is shown; `onLeave(stop)`. */
function pageScope() {
  const scope = {
    every(ms, fn) {
      const timer = setInterval(fn, ms);
      leaving.push(() => clearInterval(timer));
    },
    onLeave(stop) {
      leaving.push(stop);
    },
    signOut,
  };
  return scope;
}

async function signIn(key, account, userId) {
  const api = new Api(key, "", onRefused);
  const accounts = await api.listAll("/v1/accounts", "accounts");
  const ids = accounts.map((a) => a.name.split("/").pop());
  if (!account) {
    if (ids.length !== 1) return { choose: ids };
    account = ids[0];
  }
  if (!ids.includes(account)) throw new Error(`this key cannot act in account ${account}`);
  api.account = account;
  const [users, table] = await Promise.all([
    api.listAll(api.acct("users"), "users"),
    fetch("/ui/roles.json").then((r) => r.json()),
  ]);
  const user = await findMe(api, users, key, userId);
  const me = { id: user.name.split("/").pop(), email: user.email || "", role: user.role };
  saveSession({ key, account, userId: me.id });
  ctx = { api, account, me, access: new Access(me, table) };
  return { ok: true };
}

function onRefused(error) {
  if (!ctx) return;
  signOut(`The gateway refused the API key (${error.message}). Sign in again.`);
}

function signOut(message = "") {
  leavePage();
  clearSession();
  ctx = null;
  nav.hidden = true;
  who.hidden = true;
  replace(nav);
  replace(who);
  if (location.hash) history.replaceState(null, "", "/");
  renderSignIn(message);
}

function renderSignIn(message = "", step = { choose: null, key: "", userId: "" }) {
  document.title = "Sign in · Hearth";
  const error = h("div", {});
  const keyInput = h("input", {
    id: "api-key", name: "apiKey", type: "password", autocomplete: "off", spellcheck: "false",
    required: true, value: step.key,
  });
  const userInput = h("input", { id: "user-id", name: "userId", autocomplete: "username", value: step.userId });
  const accountSelect = step.choose
    ? h("select", { id: "account", name: "account", required: true }, step.choose.map((a) => h("option", { value: a }, a)))
    : null;
  const submit = h("button", { type: "submit" }, step.choose ? "Continue" : "Sign in");
  const form = h(
    "form",
    { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in to Hearth"),
    message ? h("p", { class: "error", role: "alert", id: "signin-message" }, message) : null,
    h("label", { for: "api-key" }, "API key"),
    keyInput,
    h("p", { class: "hint" }, "Kept in this browser tab only, until you sign out or close it."),
    h("label", { for: "user-id" }, "User ID (optional)"),
    userInput,
    h("p", { class: "hint" }, "Found from the key when left empty."),
    accountSelect ? [h("label", { for: "account" }, "Account"), accountSelect] : null,
    error,
    h("p", {}, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    replace(error);
    form.querySelector("#signin-message")?.remove();
    const key = keyInput.value.trim();
    try {
      const result = await signIn(key, accountSelect ? accountSelect.value : "", userInput.value.trim());
      if (result.choose) {
        if (!result.choose.length) throw new Error("this key can act in no account");
        renderSignIn("", { choose: result.choose, key, userId: userInput.value.trim() });
        return;
      }
      start();
    } catch (failure) {
      replace(error, errorBox(failure));
      submit.disabled = false;
    }
  });
  replace(main, form);
  keyInput.focus();
}

function renderChrome() {
  replace(
    nav,
    PAGES.map((page) => h("a", { href: `#/${page.path}`, "data-page": page.path }, page.title)),
  );
  replace(
    who,
    h("span", { id: "whoami" }, `${ctx.me.id} · ${ctx.me.role} · account ${ctx.account}`),
    h("button", { type: "button", class: "secondary", id: "sign-out", onclick: () => signOut("Signed out.") }, "Sign out"),
  );
  nav.hidden = false;
  who.hidden = false;
}

/** Rows a list page asks the API for: `?pageSize=` in the address (1-200), else 50. */
function pageSizeOf(query) {
  const asked = Number(query.get("pageSize"));
  return Number.isInteger(asked) && asked >= 1 ? Math.min(asked, 200) : DEFAULT_PAGE_SIZE;
}

async function route() {
  if (!ctx) return;
  leavePage();
  const [route, search = ""] = (location.hash || "#/deployments").split("?");
  const [, path = "deployments", ...rest] = route.split("/");
  const query = new URLSearchParams(search);
  const page = PAGES.find((p) => p.path === path) || PAGES[0];
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.page === page.path) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${page.title} · Hearth`;
  const view = h("section", { "aria-live": "off" });
  replace(main, view);
  try {
    const module = await page.load();
    const arg = rest.map(decodeURIComponent).join("/");
    await module.render({ ...ctx, ...pageScope(), query, pageSize: pageSizeOf(query) }, view, arg);
  } catch (error) {
    if (ctx) replace(view, errorBox(error));
  }
}

function start() {
  renderChrome();
  if (!location.hash) history.replaceState(null, "", "#/deployments");
  route();
  main.focus();
}

async function boot() {
  window.addEventListener("hashchange", () => {
    route();
    main.focus();
  });
  const saved = loadSession();
  if (!saved) {
    renderSignIn();
    return;
  }
  try {
    await signIn(saved.key, saved.account, saved.userId);
    start();
  } catch (error) {
    clearSession();
    renderSignIn(`Your session ended: ${error.message}`);
  }
}

boot();
