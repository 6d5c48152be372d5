// The events page: the account's audit log, newest first, a page at a time
// (GET /events?limit&before).

import * as api from "./api.js";
import { busy, h, loading, time } from "./dom.js";

const PAGE_SIZE = 25;

const EVENT_WORDS = {
  "session.created": "Signed in",
  "session.revoked": "Session ended",
  "session.reuse_detected": "Refresh token reused: session revoked",
  "login.failed": "Failed sign-in",
  "key.created": "Key created",
  "key.rotated": "Key rotated",
  "key.revoked": "Key revoked",
  "key.expired": "Key expired",
  "key.rate_limited": "Key hit its rate limit",
  "user.deactivated": "Account deactivated",
  "user.activated": "Account activated",
  "webhook.test": "Webhook test",
};

/** What an event's data says, as label/value pairs (text only). */
function details(data) {
  if (!data || typeof data !== "object") return h("span", { class: "muted" }, "—");
  const entries = Object.entries(data).filter(([, value]) => value !== null && value !== undefined && value !== "");
  if (entries.length === 0) return h("span", { class: "muted" }, "—");
  return h(
    "dl",
    { class: "event-data" },
    entries.map(([name, value]) =>
      h(
        "div",
        {},
        h("dt", {}, name),
        h("dd", {}, typeof value === "object" ? JSON.stringify(value) : String(value)),
      ),
    ),
  );
}

export async function eventsPage(main, context) {
  // The `before` cursor of each page shown so far: Newer goes back one.
  const cursors = [null];
  const list = h("div", { class: "list" });
  const newer = h("button", { type: "button", class: "secondary" }, "← Newer");
  const older = h("button", { type: "button", class: "secondary" }, "Older →");
  const position = h("span", { class: "muted", "aria-live": "polite" });
  const reload = h("button", { type: "button", class: "secondary small" }, "Refresh");
  let nextBefore = null;

  // After busy() has put the buttons back: only the pages that exist.
  function updatePager() {
    newer.disabled = cursors.length === 1;
    older.disabled = !nextBefore;
    position.textContent = `Page ${cursors.length}`;
  }

  main.append(
    h("h1", {}, "Events"),
    h("p", { class: "lead" }, "Your account's audit log, newest first: sign-ins, keys created, rotated and revoked, webhook tests."),
    h("div", { class: "toolbar" }, reload),
    list,
    h("nav", { class: "pager", "aria-label": "Event pages" }, newer, position, older),
  );

  async function show() {
    list.setAttribute("aria-busy", "true");
    if (!list.firstChild) list.append(loading("Loading events…"));
    const before = cursors[cursors.length - 1];
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (before) query.set("before", before);
    let page;
    try {
      page = await api.call("GET", `/events?${query}`);
    } catch (error) {
      if (!context.isCurrent()) return;
      list.replaceChildren(h("p", { class: "form-error", role: "alert" }, `Could not load events: ${error.describe()}`));
      list.removeAttribute("aria-busy");
      nextBefore = null;
      updatePager();
      return;
    }
    if (!context.isCurrent()) return;
    nextBefore = page.nextBefore;
    list.replaceChildren(eventsTable(page.events));
    list.removeAttribute("aria-busy");
    updatePager();
  }

  newer.addEventListener("click", async () => {
    await busy(newer, "Loading…", async () => {
      cursors.pop();
      await show();
    });
    updatePager();
  });
  older.addEventListener("click", async () => {
    await busy(older, "Loading…", async () => {
      cursors.push(nextBefore);
      await show();
    });
    updatePager();
  });
  reload.addEventListener("click", async () => {
    await busy(reload, "Refreshing…", show);
    updatePager();
  });
  updatePager();
  await show();
}

function eventsTable(events) {
  if (events.length === 0) return h("p", { class: "empty" }, "No events yet.");
  const header = ["When", "Event", "Details"];
  return h(
    "table",
    { class: "responsive events-table" },
    h("caption", { class: "visually-hidden" }, "Events, newest first"),
    h("thead", {}, h("tr", {}, header.map((label) => h("th", { scope: "col" }, label)))),
    h(
      "tbody",
      {},
      events.map((event) =>
        h(
          "tr",
          { "data-event-type": event.type },
          h("td", { "data-label": "When" }, time(event.createdAt)),
          h(
            "td",
            { "data-label": "Event" },
            h(
              "div",
              {},
              h("span", { class: "event-word" }, EVENT_WORDS[event.type] || event.type),
              h("code", { class: "sub" }, event.type),
            ),
          ),
          h("td", { "data-label": "Details" }, details(event.data)),
        ),
      ),
    ),
  );
}
