// Invocations (sys_invocation via POST /query), filtered by service, key, status and age.
import { api, lit, sql } from "../api.js";
import { badge, field, fmtTime, h, link, routeParams, routeTo, section, table } from "../dom.js";
import { invocationActions } from "./actions.js";

export const STATUSES = ["pending", "scheduled", "ready", "running", "backing-off", "suspended", "paused", "completed"];
const AGES = {
  "": "any age",
  "5m": "created in the last 5 minutes",
  "1h": "created in the last hour",
  "24h": "created in the last 24 hours",
  ">1h": "older than 1 hour",
  ">24h": "older than 24 hours",
};
const INTERVAL = { "5m": "5 minutes", "1h": "1 hour", "24h": "24 hours" };
const LIMIT = 200;

export function whereClause(p) {
  const where = [];
  if (p.get("service")) where.push(`target_service_name = ${lit(p.get("service"))}`);
  if (p.get("key")) where.push(`target_service_key = ${lit(p.get("key"))}`);
  if (p.get("handler")) where.push(`target_handler_name = ${lit(p.get("handler"))}`);
  if (p.get("status")) where.push(`status = ${lit(p.get("status"))}`);
  const age = p.get("age") || "";
  if (INTERVAL[age]) where.push(`created_at >= now() - interval '${INTERVAL[age]}'`);
  if (age.startsWith(">") && INTERVAL[age.slice(1)]) where.push(`created_at < now() - interval '${INTERVAL[age.slice(1)]}'`);
  return where.length ? `WHERE ${where.join(" AND ")}` : "";
}

function select(name, options, value) {
  return h("select", { name }, Object.entries(options).map(([v, text]) =>
    h("option", { value: v, selected: v === value }, text)));
}

function filters(p, serviceNames) {
  const el = h("form", {
    id: "invocation-filters",
    class: "inline-form",
    onsubmit: (event) => {
      event.preventDefault();
      routeTo("invocations", Object.fromEntries(new FormData(el).entries()));
    },
  },
  field("Service", select("service", Object.fromEntries([["", "all services"], ...serviceNames.map((n) => [n, n])]), p.get("service") || "")),
  field("Key", h("input", { name: "key", value: p.get("key") || "", placeholder: "any key", size: 12 })),
  field("Status", select("status", Object.fromEntries([["", "any status"], ...STATUSES.map((s) => [s, s])]), p.get("status") || "")),
  field("Age", select("age", AGES, p.get("age") || "")),
  h("button", { type: "submit" }, "Filter"));
  return el;
}

export async function render(root) {
  const p = routeParams();
  const [{ services }, rows] = await Promise.all([
    api("GET", "/services"),
    sql(`SELECT id, target, target_service_name, target_service_key, status, created_at, modified_at, retry_count, `
      + `last_failure, invoked_by, invoked_by_target FROM sys_invocation ${whereClause(p)} `
      + `ORDER BY created_at DESC LIMIT ${LIMIT}`),
  ]);
  const names = services.map((s) => s.name).sort();
  root.append(section(`Invocations (${rows.length}${rows.length === LIMIT ? "+" : ""})`,
    filters(p, names),
    table([
      ["Id", (r) => link(`#/invocation/${r.id}`, r.id)],
      ["Target", (r) => r.target],
      ["Status", (r) => badge(r.status)],
      ["Invoked by", (r) => r.invoked_by_target || r.invoked_by || ""],
      ["Created", (r) => fmtTime(r.created_at)],
      ["Modified", (r) => fmtTime(r.modified_at)],
      ["Retries", (r) => r.retry_count || ""],
      ["Last failure", (r) => (r.last_failure ? h("span", { class: "failure" }, r.last_failure) : "")],
      ["", (r) => invocationActions(r.id, r.status)],
    ], rows, { rowId: (r) => r.id, empty: "No invocations match these filters." })));
}
