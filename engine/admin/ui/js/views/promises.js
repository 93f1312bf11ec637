// Durable promises of workflows (sys_promise via POST /query).
import { api, lit, sql } from "../api.js";
import { badge, field, h, link, notice, routeParams, routeTo, section, table } from "../dom.js";

export async function render(root) {
  const p = routeParams();
  const { services } = await api("GET", "/services");
  const flows = services.filter((s) => s.ty === "Workflow").map((s) => s.name).sort();
  if (!flows.length) {
    root.append(section("Promises", notice("No workflows are registered.")));
    return;
  }
  const where = [];
  if (p.get("service")) where.push(`service_name = ${lit(p.get("service"))}`);
  if (p.get("key")) where.push(`service_key = ${lit(p.get("key"))}`);
  const rows = await sql("SELECT service_name, service_key, key, completed, completion_success_value_utf8, completion_failure "
    + `FROM sys_promise ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY service_name, service_key, key LIMIT 500`);
  const el = h("form", {
    id: "promise-filters",
    class: "inline-form",
    onsubmit: (event) => {
      event.preventDefault();
      routeTo("promises", Object.fromEntries(new FormData(el).entries()));
    },
  },
  field("Workflow", h("select", { name: "service" }, h("option", { value: "" }, "all workflows"),
    flows.map((n) => h("option", { value: n, selected: n === p.get("service") }, n)))),
  field("Workflow id", h("input", { name: "key", value: p.get("key") || "", placeholder: "any id", size: 16 })),
  h("button", { type: "submit" }, "Filter"));
  root.append(section(`Workflow promises (${rows.length})`, el, table([
    ["Workflow", (r) => r.service_name],
    ["Id", (r) => link(`#/state?service=${encodeURIComponent(r.service_name)}&key=${encodeURIComponent(r.service_key)}`, r.service_key)],
    ["Promise", (r) => h("strong", {}, r.key)],
    ["State", (r) => (r.completed ? badge(r.completion_failure ? "rejected" : "resolved") : badge("pending"))],
    ["Value", (r) => r.completion_success_value_utf8 ?? ""],
    ["Failure", (r) => r.completion_failure ?? ""],
  ], rows, { rowId: (r) => `${r.service_key}/${r.key}`, empty: "No promises match." })));
}
