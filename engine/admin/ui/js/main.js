// Hash router: #/<view>[/<arg>][?params]; each view is one module with render(root, arg).
import { getToken, setToken } from "./api.js";
import { errorBox, h } from "./dom.js";
import * as services from "./views/services.js";
import * as invocations from "./views/invocations.js";
import * as invocation from "./views/invocation.js";
import * as state from "./views/state.js";
import * as promises from "./views/promises.js";
import * as subscriptions from "./views/subscriptions.js";

const VIEWS = { services, invocations, invocation, state, promises, subscriptions };
const NAV_OF = { invocation: "invocations" };

let generation = 0;

async function show() {
  const hash = (location.hash || "#/services").slice(2);
  const path = hash.split("?")[0];
  const [name, ...rest] = path.split("/");
  const view = VIEWS[name] || services;
  const mine = ++generation;
  const root = document.getElementById("view");
  const fresh = h("div", { class: "view", "data-view": VIEWS[name] ? name : "services" });
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.view === (NAV_OF[name] || name));
  }
  try {
    await view.render(fresh, decodeURIComponent(rest.join("/")));
  } catch (err) {
    fresh.append(errorBox(err));
  }
  // A slower render of a route the user already left must not replace the newer one.
  if (mine !== generation) return;
  fresh.dataset.ready = "true";
  root.replaceChildren(fresh);
}

function useToken(token) {
  setToken(token.trim());
  document.getElementById("token").value = getToken();
  show();
}

function setupToken() {
  const input = document.getElementById("token");
  input.value = getToken();
  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    useToken(input.value);
  });
}

// A 401 from any request: the token is missing or wrong. The view gives way to a small
// form that asks for it; the token stays in sessionStorage (this tab only) and goes out
// as "Authorization: Bearer" on every request from then on.
function askForToken(event) {
  generation++; // a render still in flight must not replace the form
  const input = h("input", { id: "login-token", type: "password", autocomplete: "off", required: true,
    placeholder: "admin token", "aria-label": "Admin token" });
  const form = h("form", { id: "login-form", class: "login", autocomplete: "off", onsubmit: (e) => {
    e.preventDefault();
    useToken(input.value);
  } },
  h("h2", {}, "Admin token required"),
  h("p", { class: "muted" }, getToken()
    ? "The engine refused the token you entered. Enter the admin token it is configured with (admin_token / LOGSTRATE_ADMIN_TOKEN)."
    : "This engine's admin API needs a token (admin_token / LOGSTRATE_ADMIN_TOKEN). It is kept for this tab only."),
  h("p", { class: "muted detail" }, String(event.detail || "")),
  h("div", { class: "row" }, input, h("button", { type: "submit" }, "Sign in")));
  const view = h("div", { class: "view", "data-view": "login", "data-ready": "true" }, form);
  document.getElementById("view").replaceChildren(view);
  input.focus();
}

window.addEventListener("logstrate:unauthorized", askForToken);
window.addEventListener("hashchange", show);
window.addEventListener("logstrate:refresh", show);
setupToken();
show();
