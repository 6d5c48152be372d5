// The keys page (list, create, rotate, revoke, a sparkline per key) and a
// key's usage page (hour/day chart stacked by outcome, totals).

import * as api from "./api.js";
import { OUTCOMES, formatCount, legend, sparkline, stackedBars, usageTable } from "./chart.js";
import {
  announce,
  busy,
  clearErrors,
  dialog,
  errorSlot,
  field,
  h,
  loading,
  reportErrors,
  secretPanel,
  setError,
  time,
  uid,
} from "./dom.js";

const GRACE_CHOICES = [
  [0, "Now", "the old key stops working at once"],
  [3600, "In 1 hour", ""],
  [86400, "In 24 hours", ""],
  [604800, "In 7 days", ""],
];

const STATUS_WORDS = { active: "Active", rotating: "Rotating", expired: "Expired", revoked: "Revoked" };

function statusBadge(key) {
  return h("span", { class: `badge status-${key.status}` }, STATUS_WORDS[key.status] || key.status);
}

/** Runs `jobs` (functions returning promises) at most `limit` at a time. */
async function inTurns(jobs, limit) {
  const queue = [...jobs];
  const workers = Array.from({ length: Math.min(limit, queue.length) }, async () => {
    while (queue.length) await queue.shift()();
  });
  await Promise.all(workers);
}

export async function keysPage(main, context) {
  const onceSlot = h("div", { class: "once-slot" });
  const listHeading = h("h2", { id: "keys-heading" }, "Your keys");
  const list = h("div", { class: "list", "aria-labelledby": "keys-heading" });
  const reload = h("button", { type: "button", class: "secondary small" }, "Refresh");
  main.append(
    h("h1", {}, "API keys"),
    h(
      "p",
      { class: "lead" },
      "Services present a key in the ",
      h("code", {}, "x-api-key"),
      " header. A key is shown once, when it is created or rotated; authgate keeps only its hash.",
    ),
    onceSlot,
    createForm({ showSecret, refresh: () => refresh() }),
    h("section", { class: "keys" }, h("div", { class: "section-head" }, listHeading, reload), list),
  );
  reload.addEventListener("click", () => busy(reload, "Refreshing…", refresh));

  function showSecret(title, secret, warning) {
    onceSlot.replaceChildren(secretPanel({ title, secret, warning, onDone: () => listHeading.focus() }));
    onceSlot.querySelector("h2").setAttribute("tabindex", "-1");
    onceSlot.querySelector("h2").focus();
  }

  async function refresh() {
    list.setAttribute("aria-busy", "true");
    if (!list.firstChild) list.append(loading("Loading your keys…"));
    let keys;
    try {
      keys = await api.call("GET", "/keys");
    } catch (error) {
      if (!context.isCurrent()) return;
      list.replaceChildren(h("p", { class: "form-error", role: "alert" }, `Could not load your keys: ${error.describe()}`));
      list.removeAttribute("aria-busy");
      return;
    }
    if (!context.isCurrent()) return;
    list.replaceChildren(keysTable(keys, { showSecret, refresh }));
    list.removeAttribute("aria-busy");
    const cells = [...list.querySelectorAll("[data-spark]")];
    inTurns(
      cells.map((cell) => async () => {
        try {
          const report = await api.call("GET", `/keys/${cell.dataset.spark}/usage`);
          cell.replaceChildren(sparkline(report));
        } catch (error) {
          cell.replaceChildren(h("span", { class: "muted", title: error.describe() }, "unavailable"));
        }
      }),
      4,
    );
  }

  listHeading.setAttribute("tabindex", "-1");
  await refresh();
}

function createForm({ showSecret, refresh }) {
  const name = field("Name", { type: "text", name: "name", required: true, maxlength: 100, autocomplete: "off" }, {
    hint: "What uses it, e.g. billing-service. Unique among your active keys.",
  });
  const expires = field("Expires (optional)", { type: "datetime-local", name: "expiresAt" }, {
    hint: "Your local time. Leave empty for a key that does not expire.",
  });
  const requests = field("Requests", { type: "number", name: "requests", min: 1, max: 1000000, inputmode: "numeric" });
  const perSeconds = field("per seconds", { type: "number", name: "perSeconds", min: 1, max: 86400, inputmode: "numeric" });
  const limitError = h("p", { class: "field-error", id: uid("limit-error"), hidden: true });
  requests.input.setAttribute("aria-describedby", `${requests.input.getAttribute("aria-describedby")} ${limitError.id}`);
  perSeconds.input.setAttribute("aria-describedby", `${perSeconds.input.getAttribute("aria-describedby")} ${limitError.id}`);
  const rateLimit = { input: requests.input, error: limitError };
  const slot = errorSlot();
  const submit = h("button", { type: "submit" }, "Create key");
  const fields = { name, expiresAt: expires, rateLimit };
  const form = h(
    "form",
    { class: "card create", method: "post", novalidate: true, "aria-labelledby": "create-heading" },
    h("h2", { id: "create-heading" }, "Create a key"),
    h(
      "div",
      { class: "grid-fields" },
      name.wrapper,
      expires.wrapper,
      h(
        "fieldset",
        { class: "field rate" },
        h("legend", {}, "Rate limit (optional)"),
        h("div", { class: "pair" }, requests.wrapper, perSeconds.wrapper),
        h("p", { class: "hint" }, "Over it, the key gets 429 until the window ends. Leave both empty for none."),
        limitError,
      ),
    ),
    h("div", { class: "actions" }, submit, slot),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors({ fields, slot });
    const body = { name: name.input.value };
    if (expires.input.value) {
      const at = new Date(expires.input.value);
      if (Number.isNaN(at.getTime())) {
        setError(expires.error, "Enter a date and time.", expires.input);
        return;
      }
      body.expiresAt = at.toISOString();
    }
    const [r, p] = [requests.input.value, perSeconds.input.value];
    if (r || p) {
      if (!r || !p) {
        setError(limitError, "Give both a number of requests and a window in seconds, or neither.", requests.input);
        (r ? perSeconds.input : requests.input).focus();
        return;
      }
      body.rateLimit = { requests: Number(r), perSeconds: Number(p) };
    }
    await busy(submit, "Creating…", async () => {
      let created;
      try {
        created = await api.call("POST", "/keys/create", body);
      } catch (error) {
        reportErrors(error, { fields, slot, byStatus: { 409: "name" } });
        return;
      }
      form.reset();
      showSecret(
        `Your new key “${created.name}”`,
        created.key,
        "Store it where the service that uses it can read it.",
      );
      announce(`Key ${created.name} created`);
      await refresh();
    });
  });
  return form;
}

function keysTable(keys, actions) {
  if (keys.length === 0) {
    return h("p", { class: "empty" }, "No keys yet. Create one above.");
  }
  const header = ["Name", "Prefix", "Status", "Created", "Expires", "Last used", "Last 24 h", "Actions"];
  return h(
    "table",
    { class: "keys-table responsive" },
    h("thead", {}, h("tr", {}, header.map((label) => h("th", { scope: "col" }, label)))),
    h("tbody", {}, keys.map((key) => keyRow(key, header, actions))),
  );
}

function keyRow(key, header, { showSecret, refresh }) {
  const slot = errorSlot();
  const usable = key.status === "active";
  const rotate = h("button", { type: "button", class: "secondary small", disabled: !usable }, "Rotate…");
  const revoke = h(
    "button",
    { type: "button", class: "danger small", disabled: key.status === "revoked" || key.status === "expired" },
    "Revoke…",
  );
  rotate.addEventListener("click", () => rotateDialog(key, rotate, { showSecret, refresh }));
  revoke.addEventListener("click", () => revokeDialog(key, revoke, refresh));
  const limit = key.rateLimit ? `${formatCount(key.rateLimit.requests)} per ${formatCount(key.rateLimit.perSeconds)} s` : null;
  const cells = [
    [h("a", { href: `#/keys/${key.id}`, class: "key-name" }, key.name), limit ? h("span", { class: "sub" }, limit) : null],
    [h("code", {}, key.prefix)],
    [statusBadge(key)],
    [time(key.createdAt)],
    [time(key.expiresAt, "Never")],
    [time(key.lastUsedAt, "Never")],
    [h("span", { "data-spark": key.id, class: "spark-cell" }, h("span", { class: "muted" }, "…"))],
    [h("div", { class: "row-actions" }, h("a", { href: `#/keys/${key.id}`, class: "button secondary small" }, "Usage"), rotate, revoke), slot],
  ];
  return h(
    "tr",
    { "data-key-id": key.id },
    cells.map((content, index) =>
      index === 0
        ? h("th", { scope: "row", "data-label": header[index] }, h("div", {}, content))
        : h("td", { "data-label": header[index] }, h("div", {}, content)),
    ),
  );
}

function rotateDialog(key, opener, { showSecret, refresh }) {
  const name = uid("grace");
  const choices = GRACE_CHOICES.map(([seconds, label, note]) => {
    const id = uid("grace");
    return h(
      "div",
      { class: "choice" },
      h("input", { type: "radio", name, id, value: String(seconds), checked: seconds === 3600 }),
      h("label", { for: id }, label, note ? h("span", { class: "sub" }, ` (${note})`) : null),
    );
  });
  const slot = errorSlot();
  const confirm = h("button", { type: "submit" }, "Rotate key");
  const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
  const form = h(
    "form",
    { method: "dialog" },
    h(
      "p",
      {},
      "A new key replaces ",
      h("code", {}, key.prefix),
      ": same name, rate limit and expiry. It works at once.",
    ),
    h("fieldset", { class: "choices" }, h("legend", {}, "When should the old key stop working?"), choices),
    h("div", { class: "actions" }, confirm, cancel, slot),
  );
  const box = dialog(`Rotate “${key.name}”`, form);
  cancel.addEventListener("click", () => box.close());
  box.addEventListener("close", () => opener.isConnected && opener.focus());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const seconds = Number(form.querySelector(`input[name="${name}"]:checked`).value);
    await busy(confirm, "Rotating…", async () => {
      let rotated;
      try {
        rotated = await api.call("POST", `/keys/${key.id}/rotate`, { gracePeriodSeconds: seconds });
      } catch (error) {
        reportErrors(error, { slot });
        return;
      }
      box.close();
      showSecret(
        `The new key for “${rotated.name}”`,
        rotated.key,
        seconds === 0
          ? "The old key has stopped working."
          : "Put it where the old one is used before the old key stops working.",
      );
      announce(`Key ${rotated.name} rotated`);
      await refresh();
    });
  });
  box.showModal();
}

function revokeDialog(key, opener, refresh) {
  const slot = errorSlot();
  const confirm = h("button", { type: "submit", class: "danger" }, "Revoke key");
  const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
  const form = h(
    "form",
    { method: "dialog" },
    h(
      "p",
      {},
      "Services presenting ",
      h("code", {}, `${key.prefix}…`),
      " get 401 at once. This cannot be undone.",
    ),
    h("div", { class: "actions" }, confirm, cancel, slot),
  );
  const box = dialog(`Revoke “${key.name}”?`, form);
  cancel.addEventListener("click", () => box.close());
  box.addEventListener("close", () => opener.isConnected && opener.focus());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await busy(confirm, "Revoking…", async () => {
      try {
        await api.call("DELETE", `/keys/${key.id}`);
      } catch (error) {
        reportErrors(error, { slot });
        return;
      }
      box.close();
      announce(`Key ${key.name} revoked`);
      await refresh();
      document.getElementById("keys-heading")?.focus();
    });
  });
  box.showModal();
  cancel.focus();
}

/** The width a chart in `container` is shown at (its box's padding taken off). */
function chartWidth(container) {
  return Math.round(Math.min(1100, Math.max(280, container.clientWidth - 26)));
}

const RANGES = [
  ["hour", "Per hour, last 24 hours"],
  ["day", "Per day, last 30 days"],
];

export async function keyUsagePage(main, context) {
  const [id] = context.params;
  const heading = h("h1", {}, "Key usage");
  const meta = h("p", { class: "lead" });
  const body = h("div", { class: "usage" }, loading("Loading usage…"));
  let granularity = "hour";
  const radios = RANGES.map(([value, label]) => {
    const inputId = uid("range");
    const input = h("input", { type: "radio", name: "granularity", id: inputId, value, checked: value === granularity });
    input.addEventListener("change", () => {
      granularity = value;
      load();
    });
    return h("span", { class: "segment" }, input, h("label", { for: inputId }, label));
  });
  const reload = h("button", { type: "button", class: "secondary small" }, "Refresh");
  reload.addEventListener("click", () => busy(reload, "Refreshing…", load));
  main.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/keys" }, "← All keys")),
    heading,
    meta,
    h("div", { class: "toolbar" }, h("fieldset", { class: "segments" }, h("legend", { class: "visually-hidden" }, "Range"), radios), reload),
    body,
  );

  const keys = await api.call("GET", "/keys").catch(() => []);
  if (!context.isCurrent()) return;
  const key = keys.find((candidate) => candidate.id === id);
  if (key) {
    heading.textContent = `Usage of “${key.name}”`;
    meta.replaceChildren(h("code", {}, key.prefix), " ", statusBadge(key), " · created ", time(key.createdAt), " · last used ", time(key.lastUsedAt, "never"));
  }

  async function load() {
    body.setAttribute("aria-busy", "true");
    let report;
    try {
      report = await api.call("GET", `/keys/${id}/usage?granularity=${granularity}`);
    } catch (error) {
      if (!context.isCurrent()) return;
      body.replaceChildren(h("p", { class: "form-error", role: "alert" }, `Could not load the usage: ${error.describe()}`));
      body.removeAttribute("aria-busy");
      return;
    }
    if (!context.isCurrent()) return;
    body.replaceChildren(
      h(
        "dl",
        { class: "totals" },
        h("div", { class: "total" }, h("dt", {}, "Total"), h("dd", {}, formatCount(report.totals.total))),
        OUTCOMES.map(([fieldName, label]) =>
          h("div", { class: `total t-${fieldName}` }, h("dt", {}, label), h("dd", {}, formatCount(report.totals[fieldName]))),
        ),
      ),
      h("figure", { class: "chart-box" }, stackedBars(report, chartWidth(body)), h("figcaption", {}, legend())),
      h("details", { class: "numbers-box" }, h("summary", {}, "The numbers"), usageTable(report)),
      h("p", { class: "hint" }, "Requests appear here within a few seconds of being made. Times are in your time zone; buckets are UTC hours and days."),
    );
    body.removeAttribute("aria-busy");
  }
  await load();
}
