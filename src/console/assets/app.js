// The console's shell: which page the address names (#/keys, #/keys/<id>,
// #/webhooks, #/events), signing in and out, and the header. Pages live in
// keys.js, webhooks.js and events.js.

import * as api from "./api.js";
import { announce, busy, errorSlot, field, h, reportErrors } from "./dom.js";
import { keyUsagePage, keysPage } from "./keys.js";
import { webhooksPage } from "./webhooks.js";
import { eventsPage } from "./events.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const account = document.getElementById("account");
let renderCount = 0;
let notice = null;

const pages = [
  [/^#\/keys\/([0-9a-f-]{36})$/, keyUsagePage],
  [/^#\/keys$/, keysPage],
  [/^#\/webhooks$/, webhooksPage],
  [/^#\/events$/, eventsPage],
];

function showHeader() {
  const user = api.currentUser();
  nav.hidden = !user;
  account.hidden = !user;
  document.getElementById("account-email").textContent = user ? user.email : "";
  for (const link of nav.querySelectorAll("a")) {
    if (location.hash.startsWith(link.getAttribute("href"))) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

/** Draws the page the address names; a sign-in form while nobody is signed in. */
async function render() {
  renderCount += 1;
  const mine = renderCount;
  showHeader();
  main.replaceChildren();
  if (!api.signedIn()) {
    authPage(location.hash === "#/signup" ? "signup" : "signin");
    return;
  }
  const found = pages.map(([pattern, page]) => [location.hash.match(pattern), page]).find(([match]) => match);
  if (!found) {
    location.replace("#/keys");
    return;
  }
  const [match, page] = found;
  const context = {
    // A page that waited must not draw over the one the user has moved on to.
    isCurrent: () => mine === renderCount,
    params: match.slice(1),
  };
  await page(main, context);
  if (context.isCurrent()) focusHeading();
}

function focusHeading() {
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
    document.title = `${heading.textContent} · authgate console`;
  }
}

function authPage(mode) {
  const signingUp = mode === "signup";
  const email = field("Email", { type: "email", name: "email", autocomplete: "email", required: true });
  const name = signingUp ? field("Name (optional)", { type: "text", name: "name", autocomplete: "name", maxlength: 100 }) : null;
  const password = field(
    "Password",
    {
      type: "password",
      name: "password",
      autocomplete: signingUp ? "new-password" : "current-password",
      required: true,
      minlength: signingUp ? 8 : null,
    },
    { hint: signingUp ? "8 to 72 characters." : null },
  );
  const slot = errorSlot();
  const submit = h("button", { type: "submit" }, signingUp ? "Create account" : "Sign in");
  const fields = { email, password, ...(name ? { name } : {}) };
  const form = h(
    "form",
    { class: "card narrow", method: "post", novalidate: true },
    email.wrapper,
    name?.wrapper,
    password.wrapper,
    h("div", { class: "actions" }, submit, slot),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await busy(submit, signingUp ? "Creating account…" : "Signing in…", async () => {
      try {
        if (signingUp) await api.signUp(email.input.value.trim(), password.input.value, name.input.value.trim());
        else await api.signIn(email.input.value.trim(), password.input.value);
      } catch (error) {
        reportErrors(error, { fields, slot, byStatus: { 409: "email" } });
        return;
      }
      notice = null;
      if (!location.hash.match(/^#\/(keys|webhooks|events)/)) location.hash = "#/keys";
      else render();
    });
  });
  main.append(
    h(
      "div",
      { class: "auth" },
      h("h1", {}, signingUp ? "Create your account" : "Sign in"),
      h("p", { class: "lead" }, "Manage your API keys, their usage, webhooks and your account's events."),
      notice ? h("p", { class: "notice", role: "status" }, notice) : null,
      form,
      h(
        "p",
        { class: "switch" },
        signingUp ? "Already have an account? " : "New here? ",
        h("a", { href: signingUp ? "#/signin" : "#/signup" }, signingUp ? "Sign in" : "Create an account"),
      ),
    ),
  );
  document.title = `${signingUp ? "Create your account" : "Sign in"} · authgate console`;
  email.input.focus();
}

document.getElementById("sign-out").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  await busy(button, "Signing out…", async () => {
    try {
      await api.signOut();
      notice = "You are signed out.";
    } catch (error) {
      notice = `Signed out here; the server said: ${error.describe ? error.describe() : error}`;
    }
  });
  announce(notice);
  if (location.hash === "#/signin") render();
  else location.hash = "#/signin";
});

api.onSessionEnded((reason) => {
  notice = reason;
  render();
});

window.addEventListener("hashchange", render);
// A link to the page already shown draws it again (fresh data), as a reload would.
document.addEventListener("click", (event) => {
  const link = event.target.closest?.('a[href^="#/"]');
  if (link && link.getAttribute("href") === location.hash) {
    event.preventDefault();
    render();
  }
});
// Nothing keeps the tokens once the page is gone, so neither should the server.
window.addEventListener("pagehide", () => api.abandon());
window.addEventListener("pageshow", (event) => {
  if (event.persisted) render();
});

render();
