// K/V state of virtual objects and workflows: read via the `state` table (POST /query),
// changed with POST /services/{service}/state, which replaces an instance's whole state.
import { api, lit, sql } from "../api.js";
import { actionButton, field, h, link, notice, refresh, routeParams, routeTo, section, table } from "../dom.js";

const encoder = new TextEncoder();

function hexBytes(hex) {
  const out = [];
  for (let i = 0; i + 1 < String(hex || "").length; i += 2) out.push(parseInt(hex.slice(i, i + 2), 16));
  return out;
}

function picker(keyed, p) {
  const el = h("form", {
    id: "state-picker",
    class: "inline-form",
    onsubmit: (event) => {
      event.preventDefault();
      routeTo("state", Object.fromEntries(new FormData(el).entries()));
    },
  },
  field("Service", h("select", { name: "service" }, keyed.map((s) =>
    h("option", { value: s.name, selected: s.name === p.get("service") }, `${s.name} (${s.ty})`)))),
  field("Key", h("input", { name: "key", value: p.get("key") || "", placeholder: "object key / workflow id", size: 20 })),
  h("button", { type: "submit" }, "Show"));
  return el;
}

async function version(service, key) {
  // logstrate's GET /services/{s}/state/{key} gives the version POST checks; other
  // servers do not have it, and the change is then made without the check.
  try {
    return (await api("GET", `/services/${encodeURIComponent(service)}/state/${encodeURIComponent(key)}`)).version;
  } catch (_) {
    return undefined;
  }
}

function editor(service, key, rows, currentVersion) {
  const list = h("tbody", {});
  const addRow = (k, text, bytes) => {
    const binary = text == null;
    list.append(h("tr", { "data-key": k },
      h("td", {}, h("input", { class: "state-key", value: k, readonly: k !== "", placeholder: "new key", size: 16 })),
      h("td", {}, binary
        ? h("code", { class: "state-binary", "data-hex": bytes }, `binary (${bytes.length / 2} bytes): ${bytes}`)
        : h("textarea", { class: "state-value", rows: 1, cols: 48 }, text)),
      h("td", {}, h("label", { class: "check" }, h("input", { type: "checkbox", class: "state-delete" }), " delete"))));
  };
  for (const r of rows) addRow(r.key, r.value_utf8 ?? null, r.value || "");
  const save = async () => {
    const next = {};
    for (const tr of list.querySelectorAll("tr")) {
      const k = tr.querySelector(".state-key").value;
      if (!k || tr.querySelector(".state-delete").checked) continue;
      const text = tr.querySelector(".state-value");
      next[k] = text ? Array.from(encoder.encode(text.value)) : hexBytes(tr.querySelector(".state-binary").dataset.hex);
    }
    const body = { object_key: key, new_state: next };
    if (currentVersion !== undefined) body.version = currentVersion;
    await api("POST", `/services/${encodeURIComponent(service)}/state`, body);
    setTimeout(refresh, 500);
  };
  return h("div", { class: "state-editor" },
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Key"), h("th", {}, "Value (UTF-8, usually JSON)"), h("th", {}, ""))), list),
    h("div", { class: "toolbar" },
      h("button", { type: "button", id: "state-add", onclick: () => addRow("", "", "") }, "Add entry"),
      actionButton("Save", save),
      actionButton("Clear all", async () => {
        await api("POST", `/services/${encodeURIComponent(service)}/state`, { object_key: key, new_state: {} });
        setTimeout(refresh, 500);
      }, { danger: true, confirmLabel: "Confirm clear" })),
    h("p", { class: "muted" }, "Saving replaces the instance's whole state with the entries above."));
}

export async function render(root) {
  const p = routeParams();
  const { services } = await api("GET", "/services");
  const keyed = services.filter((s) => s.ty !== "Service").sort((a, b) => a.name.localeCompare(b.name));
  if (!keyed.length) {
    root.append(section("State", notice("No virtual objects or workflows are registered.")));
    return;
  }
  const service = p.get("service") || keyed[0].name;
  if (!p.get("service")) p.set("service", service);
  root.append(section("State", picker(keyed, p)));
  const key = p.get("key");
  if (key) {
    const [rows, v] = await Promise.all([
      sql(`SELECT key, value_utf8, value FROM state WHERE service_name = ${lit(service)} AND service_key = ${lit(key)} ORDER BY key`),
      version(service, key),
    ]);
    root.append(section(`${service}/${key} (${rows.length} entries)`, editor(service, key, rows, v)));
  }
  const keys = await sql(`SELECT service_key, count(*) AS entries FROM state WHERE service_name = ${lit(service)} `
    + "GROUP BY service_key ORDER BY service_key LIMIT 500");
  root.append(section(`Keys of ${service} with state (${keys.length})`, table([
    ["Key", (r) => link(`#/state?service=${encodeURIComponent(service)}&key=${encodeURIComponent(r.service_key)}`, r.service_key)],
    ["Entries", (r) => r.entries],
    ["", (r) => link(`#/invocations?service=${encodeURIComponent(service)}&key=${encodeURIComponent(r.service_key)}`, "invocations")],
  ], keys, { rowId: (r) => r.service_key, empty: "No key of this service has state." })));
}
