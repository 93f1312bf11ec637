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

function setupToken() {
  const input = document.getElementById("token");
  input.value = getToken();
  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    show();
  });
}

window.addEventListener("hashchange", show);
window.addEventListener("logstrate:refresh", show);
setupToken();
show();
