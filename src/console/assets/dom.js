// Building the page: elements are created with their text as text nodes, never
// from HTML strings, so nothing the API returns can become markup. Styles come
// from app.css classes only (the Content-Security-Policy refuses inline ones).

const SVG_NS = "http://www.w3.org/2000/svg";

function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

function assign(element, attributes) {
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "style") {
      throw new Error("inline styles are refused by the Content-Security-Policy; use a class");
    } else if (name === "value") {
      element.value = value;
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  return element;
}

/** An HTML element: h("button", {type: "button", onclick}, "Copy"). */
export function h(tag, attributes, ...children) {
  return append(assign(document.createElement(tag), attributes), children);
}

/** An SVG element, attributes and children as for h(). */
export function s(tag, attributes, ...children) {
  return append(assign(document.createElementNS(SVG_NS, tag), attributes), children);
}

let lastId = 0;
/** A fresh id for tying labels, hints and errors to their input. */
export function uid(prefix) {
  lastId += 1;
  return `${prefix}-${lastId}`;
}

/**
 * A labelled input with a hint and a slot for the API's complaint about it.
 * `control` may be given (a <select>, a group); otherwise an <input> is made
 * from `attributes`.
 */
export function field(label, attributes, { hint, control } = {}) {
  const id = uid("field");
  const input = control || h("input", { id, ...attributes });
  if (!control) input.id = id;
  const hintId = hint ? `${input.id}-hint` : null;
  const errorId = `${input.id}-error`;
  input.setAttribute("aria-describedby", [hintId, errorId].filter(Boolean).join(" "));
  const error = h("p", { class: "field-error", id: errorId, hidden: true });
  const wrapper = h(
    "div",
    { class: "field" },
    h("label", { for: input.id }, label),
    input,
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
    error,
  );
  return { wrapper, input, error };
}

/** Shows `text` in an error slot (or hides it when empty), marking its input. */
export function setError(slot, text, input) {
  slot.textContent = text || "";
  slot.hidden = !text;
  if (input) {
    if (text) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
}

/**
 * Runs `work` with `button` showing that it waits (disabled, aria-busy, its
 * label replaced by `busyLabel`), and puts it back afterwards.
 */
export async function busy(button, busyLabel, work) {
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.textContent = busyLabel;
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = label;
  }
}

/** Says `text` to screen readers (a polite live region). */
export function announce(text) {
  const region = document.getElementById("announcer");
  region.textContent = "";
  window.setTimeout(() => {
    region.textContent = text;
  }, 50);
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** A <time> for an RFC 3339 string, in the reader's zone; "—" for null. */
export function time(iso, empty = "—") {
  if (!iso) return h("span", { class: "muted" }, empty);
  const at = new Date(iso);
  return h("time", { datetime: iso, title: at.toISOString() }, dateTime.format(at));
}

/** A page's loading line, replaced by the page when it is ready. */
export function loading(text) {
  return h("p", { class: "status", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), text);
}

/** A one-off secret (key or signing secret) with a copy button and the warning. */
export function secretPanel({ title, secret, warning, onDone }) {
  const id = uid("secret");
  const output = h("input", {
    id,
    class: "secret",
    type: "text",
    readonly: true,
    value: secret,
    spellcheck: "false",
    autocomplete: "off",
    "data-secret": "",
  });
  const copied = h("span", { class: "copied", role: "status" });
  const copy = h(
    "button",
    {
      type: "button",
      onclick: async () => {
        output.select();
        try {
          await navigator.clipboard.writeText(output.value);
          copied.textContent = "Copied.";
        } catch {
          copied.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
        }
      },
    },
    "Copy",
  );
  const done = h(
    "button",
    {
      type: "button",
      class: "secondary",
      onclick: () => {
        output.value = "";
        panel.remove();
        onDone?.();
      },
    },
    "I have stored it",
  );
  const panel = h(
    "section",
    { class: "once", "aria-labelledby": `${id}-title` },
    h("h2", { id: `${id}-title` }, title),
    h("p", { class: "warning" }, h("strong", {}, "Copy it now: you will not see it again. "), warning),
    h("div", { class: "secret-row" }, h("label", { for: id, class: "visually-hidden" }, title), output, copy),
    h("div", { class: "actions" }, copied, done),
  );
  return panel;
}

/** A modal dialog (native <dialog>: focus stays inside, Escape closes it). */
export function dialog(title, ...children) {
  const id = uid("dialog");
  const element = h(
    "dialog",
    { "aria-labelledby": `${id}-title` },
    h("h2", { id: `${id}-title` }, title),
    ...children,
  );
  element.addEventListener("close", () => element.remove());
  document.body.append(element);
  return element;
}

/**
 * Puts each of the API's messages next to the input it is about: a message
 * that starts with a field's name ("name must not be empty", "rateLimit.requests
 * must be …") goes to that field; a status may name a field for messages that
 * do not (409 on a key's name); the rest go to `slot`, beside the action.
 * The first field with an error gets the focus.
 */
export function reportErrors(error, { fields = {}, slot, byStatus = {} }) {
  clearErrors({ fields, slot });
  const perField = new Map();
  const general = [];
  const messages = error.messages?.length ? error.messages : [error.title || String(error.message || error)];
  for (const message of messages) {
    const name = message.split(/[\s.]/, 1)[0];
    const target = fields[name] || fields[byStatus[error.status]];
    if (target) perField.set(target, [...(perField.get(target) || []), message]);
    else general.push(message);
  }
  for (const [target, list] of perField) setError(target.error, list.join(" "), target.input);
  if (general.length || error.retryAfter) {
    const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : "";
    setError(slot, `${general.join(" ")}${wait}`.trim());
  }
  const first = [...perField.keys()][0];
  if (first) first.input.focus();
}

export function clearErrors({ fields = {}, slot }) {
  for (const target of Object.values(fields)) setError(target.error, "", target.input);
  if (slot) setError(slot, "");
}

/** The slot an action's errors appear in, beside its buttons. */
export function errorSlot() {
  return h("p", { class: "form-error", role: "alert", hidden: true });
}
