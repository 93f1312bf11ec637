// Kafka subscriptions: consumer lag per source partition, pause/resume, delete
// (GET /subscriptions, GET /subscriptions/{id}, PATCH .../pause|resume).
import { api } from "../api.js";
import { actionButton, badge, h, notice, refresh, section, table } from "../dom.js";

async function details(sub) {
  try {
    return await api("GET", `/subscriptions/${encodeURIComponent(sub.id)}`);
  } catch (err) {
    return { ...sub, status: { lag_error: err.message } };
  }
}

function lagTable(status) {
  if (!status) return h("p", { class: "muted" }, "This server does not report consumer lag.");
  if (status.lag_error) return h("p", { class: "failure" }, status.lag_error);
  const parts = status.partitions || [];
  const total = parts.reduce((sum, p) => sum + (p.lag || 0), 0);
  return h("div", {},
    h("p", {}, `Total lag: `, h("strong", { class: "total-lag" }, String(total))),
    table([
      ["Partition", (p) => p.partition],
      ["Committed", (p) => (p.committed == null ? "none" : p.committed)],
      ["End", (p) => p.end],
      ["Lag", (p) => h("span", { class: p.lag ? "lagging" : "caught-up" }, String(p.lag))],
    ], parts, { rowId: (p) => String(p.partition), empty: "No partitions reported." }));
}

function card(sub) {
  const status = sub.status;
  const paused = Boolean(status && status.paused);
  const opts = Object.entries(sub.options || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  const act = (name) => async () => {
    await api("PATCH", `/subscriptions/${encodeURIComponent(sub.id)}/${name}`);
    setTimeout(refresh, 300);
  };
  return h("article", { class: "card subscription", "data-id": sub.id },
    h("h3", {}, h("code", {}, sub.id), " ", status ? badge(paused ? "paused" : "active") : null),
    h("p", {}, h("strong", {}, sub.source), " → ", h("strong", {}, sub.sink)),
    opts ? h("p", { class: "muted" }, opts) : null,
    status && status.this_process ? h("p", { class: "muted" }, `This process: ${JSON.stringify(status.this_process)}`) : null,
    lagTable(status),
    h("div", { class: "toolbar" },
      status ? (paused ? actionButton("Resume", act("resume")) : actionButton("Pause", act("pause"))) : null,
      actionButton("Delete", async () => {
        await api("DELETE", `/subscriptions/${encodeURIComponent(sub.id)}`);
        setTimeout(refresh, 300);
      }, { danger: true, confirmLabel: "Confirm delete" })));
}

export async function render(root) {
  const [{ subscriptions }, clusters] = await Promise.all([
    api("GET", "/subscriptions"),
    api("GET", "/kafka-clusters").catch(() => null),
  ]);
  const full = await Promise.all(subscriptions.map(details));
  root.append(section(`Subscriptions (${full.length})`,
    full.length ? full.map(card) : notice("No subscriptions. Create one with POST /subscriptions (or `restate sub create`).")));
  if (clusters && clusters.clusters) {
    root.append(section(`Kafka clusters (${clusters.clusters.length})`, table([
      ["Name", (c) => c.name],
      ["Bootstrap servers", (c) => (c.properties && c.properties["bootstrap.servers"]) || ""],
    ], clusters.clusters, { rowId: (c) => c.name, empty: "No Kafka clusters." })));
  }
}
