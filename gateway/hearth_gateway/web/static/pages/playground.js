// Playground: chat with any model the key can reach (GET /v1/models), streamed, with the
// equivalent curl / OpenAI SDK / Fireworks SDK code of the exact request.

import { sseEvents } from "../api.js";
import { errorBox, h, replace } from "../dom.js";
import { SNIPPETS } from "../snippets.js";

function numberOr(input, fallback) {
  const value = input.value.trim();
  if (value === "") return fallback;
  const number = Number(value);
  return Number.isFinite(number) ? number : fallback;
}

export async function render(ctx, view) {
  const allowed = ctx.access.inference();
  const models = await ctx.api.get("/v1/models");
  const ids = (models.data || []).map((m) => m.id).sort();
  // `#/playground?model=<id>` (e.g. a LoRA just deployed from a fine-tuning job) picks that
  // model, listed or not yet: the gateway may learn of a new deployed model a moment later.
  const asked = ctx.query ? ctx.query.get("model") : null;
  if (asked && !ids.includes(asked)) ids.unshift(asked);

  const model = h("select", { id: "pg-model", name: "model" }, ids.map((id) => h("option", { value: id, selected: id === asked }, id)));
  const system = h("textarea", { id: "pg-system", rows: 3, placeholder: "You are a helpful assistant." });
  const temperature = h("input", { id: "pg-temperature", type: "number", min: 0, max: 2, step: 0.1, value: "0.7" });
  const maxTokens = h("input", { id: "pg-max-tokens", type: "number", min: 1, step: 1, value: "128" });
  const prompt = h("textarea", { id: "pg-prompt", rows: 3, required: true });
  const send = h("button", { type: "submit", id: "pg-send", disabled: !allowed.ok || !ids.length }, "Send");
  const stop = h("button", { type: "button", id: "pg-stop", class: "secondary", disabled: true }, "Stop");
  const clear = h("button", { type: "button", class: "secondary", id: "pg-clear" }, "New chat");
  const transcript = h("div", { id: "pg-transcript", class: "transcript", "aria-live": "polite", "aria-label": "Conversation" });
  const errors = h("div", {});
  const code = h("pre", { id: "pg-code", tabindex: 0 });
  let history = [];
  let shown = SNIPPETS[0].id;
  let lastBody = null;
  let controller = null;

  const requestBody = (userText) => {
    const messages = [];
    if (system.value.trim()) messages.push({ role: "system", content: system.value.trim() });
    messages.push(...history);
    if (userText) messages.push({ role: "user", content: userText });
    return {
      model: model.value,
      messages,
      temperature: numberOr(temperature, 0.7),
      max_tokens: Math.round(numberOr(maxTokens, 128)),
      stream: true,
    };
  };

  const tabs = SNIPPETS.map((s) =>
    h("button", {
      type: "button", role: "tab", id: `tab-${s.id}`, "aria-controls": "pg-code", "aria-selected": String(s.id === shown),
      onclick: () => { shown = s.id; drawCode(); },
    }, s.title),
  );
  const drawCode = () => {
    const body = lastBody || requestBody(prompt.value.trim() || "Hello!");
    const snippet = SNIPPETS.find((s) => s.id === shown);
    for (const tab of tabs) tab.setAttribute("aria-selected", String(tab.id === `tab-${shown}`));
    code.textContent = snippet.make(location.origin, body);
  };
  for (const input of [model, system, temperature, maxTokens, prompt]) {
    input.addEventListener("input", () => { lastBody = null; drawCode(); });
  }

  const bubble = (role, text) => {
    const content = h("span", { class: "content" }, text);
    const node = h("div", { class: `msg ${role}`, "data-role": role }, h("span", { class: "who" }, role === "user" ? "You" : role === "assistant" ? "Model" : role), content);
    transcript.appendChild(node);
    transcript.scrollTop = transcript.scrollHeight;
    return content;
  };

  const form = h(
    "form",
    { class: "card", "aria-label": "Chat" },
    h("label", { for: "pg-prompt" }, "Message"),
    prompt,
    h("div", { class: "row" }, send, stop, clear),
    allowed.ok ? null : h("span", { class: "why" }, allowed.why),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text) return;
    replace(errors);
    const body = requestBody(text);
    lastBody = body;
    drawCode();
    bubble("user", text);
    prompt.value = "";
    const answer = bubble("assistant", "");
    send.disabled = true;
    stop.disabled = false;
    controller = new AbortController();
    let reply = "";
    try {
      const response = await ctx.api.fetch("POST", "/v1/chat/completions", { body, signal: controller.signal });
      for await (const event of sseEvents(response)) {
        const delta = event.choices && event.choices[0] && event.choices[0].delta;
        if (delta && delta.content) {
          reply += delta.content;
          answer.textContent = reply;
          transcript.scrollTop = transcript.scrollHeight;
        }
        if (event.error) throw new Error(event.error.message || "the stream failed");
      }
      history.push({ role: "user", content: text }, { role: "assistant", content: reply });
      answer.parentElement.dataset.done = "true";
    } catch (error) {
      if (error.name === "AbortError") {
        answer.parentElement.dataset.done = "stopped";
        history.push({ role: "user", content: text }, { role: "assistant", content: reply });
      } else {
        answer.parentElement.remove();
        replace(errors, errorBox(error));
      }
    } finally {
      controller = null;
      send.disabled = !allowed.ok;
      stop.disabled = true;
    }
  });
  stop.addEventListener("click", () => controller && controller.abort());
  clear.addEventListener("click", () => {
    history = [];
    lastBody = null;
    replace(transcript);
    drawCode();
  });
  ctx.onLeave(() => controller && controller.abort());

  replace(
    view,
    h("h1", {}, "Playground"),
    ids.length ? null : h("p", { class: "error" }, "This key can reach no model (GET /v1/models is empty)."),
    h(
      "div",
      { class: "chat" },
      h("div", {}, transcript, errors, form),
      h(
        "div",
        { class: "card" },
        h("label", { for: "pg-model" }, "Model"),
        model,
        h("label", { for: "pg-system" }, "System prompt"),
        system,
        h("div", { class: "row" },
          h("div", {}, h("label", { for: "pg-temperature" }, "Temperature"), temperature),
          h("div", {}, h("label", { for: "pg-max-tokens" }, "Max tokens"), maxTokens)),
      ),
    ),
    h("h2", { id: "code-title" }, "The same request in code"),
    h("p", { class: "hint" }, "Set HEARTH_API_KEY to your key first. The code shows the last request sent, or the one the inputs above would send."),
    h("div", { class: "tabs", role: "tablist", "aria-labelledby": "code-title" }, tabs),
    code,
  );
  drawCode();
}
