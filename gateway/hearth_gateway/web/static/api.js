// The gateway's REST and inference APIs, called with the signed-in key.

/** Fireworks' default list page size. */
export const DEFAULT_PAGE_SIZE = 50;

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The message of an error body in either dialect (control plane or OpenAI). */
export function errorMessage(body, fallback) {
  if (body && typeof body === "object") {
    if (typeof body.message === "string") return body.message;
    if (body.error && typeof body.error.message === "string") return body.error.message;
  }
  return fallback;
}

async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return new ApiError(response.status, errorMessage(body, response.statusText || "request failed"));
}

export class Api {
  /** `onUnauthorized(error)` runs when the key is refused (401) on any call. */
  constructor(key, account = "", onUnauthorized = () => {}) {
    this.key = key;
    this.account = account;
    this.onUnauthorized = onUnauthorized;
  }

  headers(extra = {}) {
    return { authorization: `Bearer ${this.key}`, ...extra };
  }

  /** A path of the signed-in account: acct("deployments") -> /v1/accounts/<a>/deployments */
  acct(path) {
    return `/v1/accounts/${encodeURIComponent(this.account)}/${path}`;
  }

  async fetch(method, path, { body, query, signal } = {}) {
    const url = new URL(path, location.origin);
    for (const [name, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
    }
    const init = { method, headers: this.headers(), signal, cache: "no-store" };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["content-type"] = "application/json";
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, `the gateway cannot be reached (${error.message})`);
    }
    if (!response.ok) {
      const error = await failure(response);
      if (error.status === 401) this.onUnauthorized(error);
      throw error;
    }
    return response;
  }

  async call(method, path, options = {}) {
    const response = await this.fetch(method, path, options);
    const text = await response.text();
    return text ? JSON.parse(text) : {};
  }

  get(path, query) {
    return this.call("GET", path, { query });
  }

  post(path, body = {}, query) {
    return this.call("POST", path, { body, query });
  }

  patch(path, body, query) {
    return this.call("PATCH", path, { body, query });
  }

  del(path) {
    return this.call("DELETE", path);
  }

  /**
   * The first `pages` pages of a list, `pageSize` items each, following nextPageToken:
   * {items, more} where `more` says the API has a further page ("More" shows it).
   */
  async listPages(path, listKey, { pages = 1, pageSize = DEFAULT_PAGE_SIZE, query = {} } = {}) {
    const items = [];
    let pageToken = "";
    for (let page = 0; page < pages; page++) {
      const answer = await this.get(path, { ...query, pageSize, pageToken });
      items.push(...(answer[listKey] || []));
      pageToken = answer.nextPageToken || "";
      if (!pageToken) break;
    }
    return { items, more: Boolean(pageToken) };
  }

  /** Every item of a paged list: follows nextPageToken (200 a page). */
  async listAll(path, listKey, query = {}) {
    const items = [];
    let pageToken = "";
    for (let pages = 0; pages < 100; pages++) {
      const page = await this.get(path, { ...query, pageSize: 200, pageToken });
      items.push(...(page[listKey] || []));
      pageToken = page.nextPageToken || "";
      if (!pageToken) break;
    }
    return items;
  }
}

/**
 * Server-sent events of a streaming answer: yields each event's parsed `data` (until
 * `[DONE]`). Events may be split anywhere across network chunks.
 */
export async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = event
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      yield JSON.parse(data);
    }
  }
}
