// The webhooks page: add an endpoint (its signing secret shown once), list
// endpoints with their state and last delivery, send a test, see recent
// deliveries, delete.

import * as api from "./api.js";
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

export const EVENT_TYPES = [
  "session.created",
  "session.revoked",
  "session.reuse_detected",
  "login.failed",
  "key.created",
  "key.rotated",
  "key.revoked",
  "key.expired",
  "key.rate_limited",
  "user.deactivated",
  "user.activated",
  "webhook.test",
];

export async function webhooksPage(main, context) {
  const onceSlot = h("div", { class: "once-slot" });
  const listHeading = h("h2", { id: "webhooks-heading", tabindex: "-1" }, "Endpoints");
  const list = h("div", { class: "list" });
  main.append(
    h("h1", {}, "Webhooks"),
    h(
      "p",
      { class: "lead" },
      "authgate POSTs your account's events to these URLs, signed with the endpoint's secret (Standard Webhooks: ",
      h("code", {}, "webhook-id"),
      ", ",
      h("code", {}, "webhook-timestamp"),
      ", ",
      h("code", {}, "webhook-signature"),
      "). Failed deliveries are retried for days.",
    ),
    onceSlot,
    addForm({ showSecret, refresh: () => refresh() }),
    h("section", {}, listHeading, list),
  );

  function showSecret(title, secret, warning) {
    onceSlot.replaceChildren(secretPanel({ title, secret, warning, onDone: () => listHeading.focus() }));
    const heading = onceSlot.querySelector("h2");
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }

  async function refresh() {
    list.setAttribute("aria-busy", "true");
    if (!list.firstChild) list.append(loading("Loading your webhooks…"));
    let hooks;
    try {
      hooks = await api.call("GET", "/webhooks");
    } catch (error) {
      if (!context.isCurrent()) return;
      list.replaceChildren(h("p", { class: "form-error", role: "alert" }, `Could not load your webhooks: ${error.describe()}`));
      list.removeAttribute("aria-busy");
      return;
    }
    if (!context.isCurrent()) return;
    list.replaceChildren(
      hooks.length === 0
        ? h("p", { class: "empty" }, "No webhooks yet. Add one above.")
        : h("ul", { class: "hooks" }, hooks.map((hook) => hookItem(hook, refresh))),
    );
    list.removeAttribute("aria-busy");
  }

  await refresh();
}

function addForm({ showSecret, refresh }) {
  const url = field("URL", { type: "url", name: "url", required: true, placeholder: "https://example.com/hooks/authgate", autocomplete: "off" }, {
    hint: "http or https; in production https, on a public address.",
  });
  const description = field("Description (optional)", { type: "text", name: "description", maxlength: 200, autocomplete: "off" });
  const all = h("input", { type: "checkbox", id: uid("event"), value: "*", checked: true });
  const boxes = EVENT_TYPES.map((type) => h("input", { type: "checkbox", id: uid("event"), value: type, disabled: true }));
  all.addEventListener("change", () => {
    for (const box of boxes) box.disabled = all.checked;
  });
  const eventsError = h("p", { class: "field-error", id: uid("events-error"), hidden: true });
  const events = { input: all, error: eventsError };
  const slot = errorSlot();
  const submit = h("button", { type: "submit" }, "Add webhook");
  const fields = { url, description, events };
  const form = h(
    "form",
    { class: "card", method: "post", novalidate: true, "aria-labelledby": "add-hook-heading" },
    h("h2", { id: "add-hook-heading" }, "Add a webhook"),
    h("div", { class: "grid-fields" }, url.wrapper, description.wrapper),
    h(
      "fieldset",
      { class: "field events-choice", "aria-describedby": eventsError.id },
      h("legend", {}, "Events to send"),
      h("div", { class: "choice" }, all, h("label", { for: all.id }, "All events")),
      h(
        "div",
        { class: "event-grid" },
        boxes.map((box) => h("div", { class: "choice" }, box, h("label", { for: box.id }, h("code", {}, box.value)))),
      ),
      eventsError,
    ),
    h("div", { class: "actions" }, submit, slot),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors({ fields, slot });
    const chosen = all.checked ? ["*"] : boxes.filter((box) => box.checked).map((box) => box.value);
    if (chosen.length === 0) {
      setError(eventsError, "Choose at least one event, or all.");
      all.focus();
      return;
    }
    const body = { url: url.input.value.trim(), events: chosen };
    if (description.input.value.trim()) body.description = description.input.value.trim();
    await busy(submit, "Adding…", async () => {
      let created;
      try {
        created = await api.call("POST", "/webhooks", body);
      } catch (error) {
        reportErrors(error, { fields, slot });
        return;
      }
      form.reset();
      for (const box of boxes) box.disabled = true;
      showSecret(
        "The signing secret of your new webhook",
        created.secret,
        "Your receiver needs it to check each delivery's webhook-signature.",
      );
      announce("Webhook added");
      await refresh();
    });
  });
  return form;
}

const DELIVERY_WORDS = { pending: "Pending", succeeded: "Succeeded", failed: "Failed" };

function deliveryBadge(delivery) {
  return h("span", { class: `badge delivery-${delivery.status}` }, DELIVERY_WORDS[delivery.status] || delivery.status);
}

function hookItem(hook, refresh) {
  const titleId = uid("hook");
  const slot = errorSlot();
  const lastDelivery = h("dd", {}, h("span", { class: "muted" }, "…"));
  const deliveries = h("div", { class: "deliveries", hidden: true, id: uid("deliveries") });
  const deliveryList = h("div", {});
  const reloadDeliveries = h("button", { type: "button", class: "secondary small" }, "Refresh deliveries");
  deliveries.append(h("div", { class: "toolbar" }, reloadDeliveries), deliveryList);
  reloadDeliveries.addEventListener("click", () => busy(reloadDeliveries, "Refreshing…", loadDeliveries));
  const test = h("button", { type: "button", class: "secondary small" }, "Send test");
  const show = h("button", { type: "button", class: "secondary small", "aria-expanded": "false", "aria-controls": deliveries.id }, "Recent deliveries");
  const remove = h("button", { type: "button", class: "danger small" }, "Delete…");
  const sent = h("span", { class: "copied", role: "status" });

  async function loadDeliveries() {
    deliveries.setAttribute("aria-busy", "true");
    if (!deliveryList.firstChild) deliveryList.append(loading("Loading deliveries…"));
    let found;
    try {
      found = (await api.call("GET", `/webhooks/${hook.id}/deliveries?limit=20`)).deliveries;
    } catch (error) {
      deliveryList.replaceChildren(h("p", { class: "form-error", role: "alert" }, `Could not load deliveries: ${error.describe()}`));
      lastDelivery.replaceChildren(h("span", { class: "muted" }, "unavailable"));
      deliveries.removeAttribute("aria-busy");
      return;
    }
    const latest = found[0];
    lastDelivery.replaceChildren(latest ? h("span", {}, deliveryBadge(latest), " ", h("code", {}, latest.type), " ", time(latest.createdAt)) : h("span", { class: "muted" }, "None yet"));
    deliveryList.replaceChildren(deliveriesTable(found));
    deliveries.removeAttribute("aria-busy");
  }

  test.addEventListener("click", () =>
    busy(test, "Sending…", async () => {
      setError(slot, "");
      try {
        const { eventId } = await api.call("POST", `/webhooks/${hook.id}/test`);
        sent.textContent = `Test event queued (${eventId}).`;
      } catch (error) {
        reportErrors(error, { slot });
        return;
      }
      await loadDeliveries();
    }),
  );
  show.addEventListener("click", () => {
    const open = deliveries.hidden;
    deliveries.hidden = !open;
    show.setAttribute("aria-expanded", String(open));
    if (open) loadDeliveries();
  });
  remove.addEventListener("click", () => deleteDialog(hook, remove, refresh));
  loadDeliveries();

  return h(
    "li",
    { class: "card hook", "aria-labelledby": titleId, "data-webhook-id": hook.id },
    h(
      "div",
      { class: "hook-head" },
      h("h3", { id: titleId, class: "hook-url" }, hook.url),
      hook.enabled
        ? h("span", { class: "badge status-active" }, "Enabled")
        : h("span", { class: "badge status-revoked" }, "Disabled"),
    ),
    hook.description ? h("p", {}, hook.description) : null,
    !hook.enabled && hook.disabledReason ? h("p", { class: "warning" }, `Disabled: ${hook.disabledReason}`) : null,
    h(
      "dl",
      { class: "facts" },
      h("div", {}, h("dt", {}, "Events"), h("dd", {}, hook.events.map((type) => h("code", { class: "chip" }, type === "*" ? "all" : type)))),
      h("div", {}, h("dt", {}, "Added"), h("dd", {}, time(hook.createdAt))),
      h("div", {}, h("dt", {}, "Last delivery"), lastDelivery),
    ),
    h("div", { class: "row-actions" }, test, show, remove, sent),
    slot,
    deliveries,
  );
}

function deliveriesTable(deliveries) {
  if (deliveries.length === 0) return h("p", { class: "empty" }, "No deliveries yet. Send a test.");
  const header = ["When", "Event", "Attempt", "Result", "Response", "Duration", "Next attempt"];
  return h(
    "table",
    { class: "responsive deliveries-table" },
    h("caption", { class: "visually-hidden" }, "Recent deliveries, newest first"),
    h("thead", {}, h("tr", {}, header.map((label) => h("th", { scope: "col" }, label)))),
    h(
      "tbody",
      {},
      deliveries.map((delivery) => {
        const cells = [
          time(delivery.createdAt),
          h("code", {}, delivery.type),
          String(delivery.attempt),
          deliveryBadge(delivery),
          [delivery.responseStatus ? `HTTP ${delivery.responseStatus}` : null, delivery.error].filter(Boolean).join(" · ") || "—",
          delivery.durationMs === null || delivery.durationMs === undefined ? "—" : `${delivery.durationMs} ms`,
          time(delivery.nextAttemptAt, "—"),
        ];
        return h("tr", {}, cells.map((content, index) => h("td", { "data-label": header[index] }, h("div", {}, content))));
      }),
    ),
  );
}

function deleteDialog(hook, opener, refresh) {
  const slot = errorSlot();
  const confirm = h("button", { type: "submit", class: "danger" }, "Delete webhook");
  const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
  const form = h(
    "form",
    { method: "dialog" },
    h("p", {}, "No more events will be sent to ", h("code", {}, hook.url), "."),
    h("div", { class: "actions" }, confirm, cancel, slot),
  );
  const box = dialog("Delete this webhook?", form);
  cancel.addEventListener("click", () => box.close());
  box.addEventListener("close", () => opener.isConnected && opener.focus());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await busy(confirm, "Deleting…", async () => {
      try {
        await api.call("DELETE", `/webhooks/${hook.id}`);
      } catch (error) {
        reportErrors(error, { slot });
        return;
      }
      box.close();
      announce("Webhook deleted");
      await refresh();
      document.getElementById("webhooks-heading")?.focus();
    });
  });
  box.showModal();
  cancel.focus();
}
