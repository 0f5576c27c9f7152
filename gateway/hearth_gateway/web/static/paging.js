// Long lists page through the API: the first page (ctx.pageSize items, `?pageSize=` in the
// address, else Fireworks' 50), and "More" adds the next one, following nextPageToken.
// A refresh re-reads the pages shown so far, so a list that refreshes itself keeps them.

import { h } from "./dom.js";

export class Pager {
  constructor(ctx, path, listKey, query = {}) {
    this.ctx = ctx;
    this.path = path;
    this.listKey = listKey;
    this.query = query;
    this.pages = 1;
    this.id = `more-${listKey}`;
  }

  /** {items, more} for the pages shown so far. */
  load() {
    return this.ctx.api.listPages(this.path, this.listKey, {
      pages: this.pages,
      pageSize: this.ctx.pageSize,
      query: this.query,
    });
  }

  /** Under the table: "More" while the API has another page; keeps focus on it. */
  control({ items, more }, refresh) {
    if (!more) return items.length > this.ctx.pageSize ? h("p", { class: "hint" }, `All ${items.length} shown.`) : null;
    const button = h("button", { type: "button", class: "secondary", id: this.id }, "More");
    button.addEventListener("click", async () => {
      button.disabled = true;
      this.pages += 1;
      await refresh();
      const next = document.getElementById(this.id);
      if (next) next.focus();
    });
    return h(
      "p",
      { class: "paging" },
      button,
      h("span", { class: "hint", "data-shown": items.length }, `${items.length} shown, ${this.ctx.pageSize} a page; more on the next page.`),
    );
  }
}
