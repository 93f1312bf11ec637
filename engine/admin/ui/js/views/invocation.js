// One invocation: its status, actions and journal as a timeline (sys_invocation,
// sys_journal and sys_journal_events via POST /query).
import { lit, sql } from "../api.js";
import { badge, fmtTime, h, link, notice, section } from "../dom.js";
import { invocationActions } from "./actions.js";
import { timeline } from "./journal.js";

const SUMMARY = [
  ["Target", "target"], ["Status", "status"], ["Invoked by", "invoked_by"], ["Caller", "invoked_by_id"],
  ["Idempotency key", "idempotency_key"], ["Deployment", "pinned_deployment_id"], ["Created", "created_at"],
  ["Modified", "modified_at"], ["Completed", "completed_at"], ["Retries", "retry_count"],
  ["Next retry", "next_retry_at"], ["Result", "completion_result"], ["Failure", "completion_failure"],
  ["Last failure", "last_failure"], ["Failure code", "last_failure_error_code"], ["Restarted from", "restarted_from"],
];
const TIMES = new Set(["created_at", "modified_at", "completed_at", "next_retry_at"]);
const LINKS = new Set(["invoked_by_id", "restarted_from"]);

function summary(inv) {
  return h("dl", { class: "summary" }, SUMMARY.filter(([, k]) => inv[k] != null && inv[k] !== "").map(([label, k]) => [
    h("dt", {}, label),
    h("dd", {}, k === "status" ? badge(inv[k])
      : LINKS.has(k) && String(inv[k]).startsWith("inv_") ? link(`#/invocation/${inv[k]}`, inv[k])
        : TIMES.has(k) ? fmtTime(inv[k]) : String(inv[k])),
  ]));
}

function offset(ms, start) {
  return ms == null || start == null ? "" : `+${Math.max(0, ms - start)} ms`;
}

function bar(item, start, span, now) {
  if (item.at == null || !span) return h("div", { class: "bar-track" });
  const end = item.done && item.done.at != null ? item.done.at : (item.completionIds.length ? now : item.at);
  const track = h("div", { class: "bar-track" });
  const b = h("div", { class: `bar ${item.kind}${item.completionIds.length && !item.done ? " pending" : ""}` });
  // CSSOM style properties are allowed under the page's CSP (no inline style attributes).
  b.style.marginLeft = `${(100 * (item.at - start)) / span}%`;
  b.style.width = `${Math.max(0.6, (100 * (end - item.at)) / span)}%`;
  track.append(b);
  return track;
}

function row(item, start, span, now) {
  const state = item.done ? `completed ${offset(item.done.at, start)}${item.done.detail ? `: ${item.done.detail}` : ""}`
    : item.completionIds.length ? "waiting" : "";
  return h("li", { class: `entry ${item.kind}`, "data-kind": item.kind, "data-type": item.type },
    h("div", { class: "entry-head" },
      h("span", { class: "idx" }, `#${item.index}`),
      badge(item.type, item.kind),
      item.name ? h("strong", {}, item.name) : null,
      h("span", { class: "detail" }, item.detail),
      item.invokedId ? link(`#/invocation/${item.invokedId}`, item.invokedId) : null,
      h("span", { class: "time" }, offset(item.at, start))),
    bar(item, start, span, now),
    state ? h("div", { class: "entry-state" }, state) : null,
    item.events.map((ev) => h("div", { class: "retry-error", "data-kind": "error" },
      h("span", { class: "time" }, offset(ev.at, start)), badge(ev.type, "error"), " ", ev.detail,
      ev.stacktrace ? h("details", {}, h("summary", {}, "stack trace"), h("pre", {}, ev.stacktrace)) : null)));
}

function waitingRows(inv) {
  const signals = (inv.suspended_waiting_for_signals || []).filter((s) => s > 16);
  return signals.map((s) => h("li", { class: "entry awakeable", "data-kind": "awakeable" },
    h("div", { class: "entry-head" }, badge("Awakeable", "awakeable"), h("span", { class: "detail" }, `waiting for awakeable (signal ${s})`))));
}

// Whether the server has sys_journal_events (restate-server does; logstrate does not):
// asked once per page, so a server without it is not sent a query that must fail.
let journalEvents = null;

function hasJournalEvents() {
  journalEvents ??= sql("SELECT table_name FROM information_schema.tables WHERE table_name = 'sys_journal_events'")
    .then((rows) => rows.length > 0, () => {
      journalEvents = null; // not an answer (no token yet, server down): ask again next time
      return true;
    });
  return journalEvents;
}

export async function render(root, id) {
  const [inv] = await sql(`SELECT * FROM sys_invocation WHERE id = ${lit(id)}`);
  if (!inv) {
    root.append(notice(`No invocation ${id} (purged, or not yet applied).`), link("#/invocations", "All invocations"));
    return;
  }
  const journal = await sql(`SELECT * FROM sys_journal WHERE id = ${lit(id)} ORDER BY index`);
  let events = [];
  let eventsNote = null;
  if (!(await hasJournalEvents())) {
    eventsNote = h("p", { class: "muted" },
      "This server keeps no retry events (no sys_journal_events table): the last failure of an invocation "
      + "that is still retrying is shown above.");
  } else {
    try {
      events = await sql(`SELECT * FROM sys_journal_events WHERE id = ${lit(id)} ORDER BY appended_at`);
    } catch (err) {
      eventsNote = h("p", { class: "muted" }, `Retry events unavailable (${err.message}); the last failure is shown above.`);
    }
  }
  const items = timeline(journal, events);
  const start = inv.created_at ? Date.parse(inv.created_at) : items[0]?.at;
  const now = inv.completed_at ? Date.parse(inv.completed_at) : Date.now();
  const last = Math.max(now, ...items.flatMap((i) => [i.at, i.done?.at, ...i.events.map((e) => e.at)]).filter((x) => x != null));
  const span = Math.max(1, last - start);
  root.append(
    section(`Invocation ${id}`, summary(inv), h("div", { class: "toolbar" }, invocationActions(id, inv.status))),
    section(`Journal (${journal.length} entries)`,
      h("ol", { class: "timeline", id: "timeline" }, items.map((i) => row(i, start, span, now)), waitingRows(inv)),
      eventsNote),
  );
}
