// Turns sys_journal rows (and sys_journal_events) into timeline items: one per command,
// its completion paired by completion id, retries' errors placed after the entry they hit.

const KINDS = [
  [/awakeable|signal/i, "awakeable"],
  [/promise/i, "promise"],
  [/sleep/i, "sleep"],
  [/onewaycall|send/i, "send"],
  [/call/i, "call"],
  [/run|sideeffect/i, "run"],
  [/state/i, "state"],
  [/input/i, "input"],
  [/output/i, "output"],
];

function kindOf(type) {
  for (const [re, kind] of KINDS) if (re.test(type)) return kind;
  return "other";
}

function parse(text) {
  if (!text) return {};
  try { return JSON.parse(text); } catch (_) { return {}; }
}

function only(obj) {
  const entries = Object.entries(obj || {});
  return entries.length === 1 && entries[0][1] && typeof entries[0][1] === "object" ? entries[0] : [null, {}];
}

function bytesText(value) {
  if (Array.isArray(value)) {
    try { return new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(value)); } catch (_) { return `${value.length} bytes`; }
  }
  return value == null ? "" : (typeof value === "string" ? value : JSON.stringify(value));
}

function targetText(t) {
  const [ty, body] = only(t);
  if (!ty) return "";
  return [body.name, body.key, body.handler].filter((x) => x != null && x !== "").join("/");
}

function resultText(result) {
  if (result == null) return "";
  if (typeof result === "string") return result === "Void" ? "" : result;
  if ("Success" in result) return bytesText(result.Success);
  if ("Failure" in result) return `failure ${result.Failure.code ?? ""} ${bytesText(result.Failure.message)}`.trim();
  if ("InvocationId" in result) return result.InvocationId;
  return JSON.stringify(result);
}

/** The parts of one journal row: command or notification, its type, body and kind. */
export function decodeEntry(row) {
  const json = parse(row.entry_json);
  const type = String(row.entry_type || "");
  let side = type.startsWith("Notification") ? "notification" : "command";
  let name = type.includes(":") ? type.split(":")[1].trim() : type;
  let body = {};
  if (json.Command) {
    [name, body] = only(json.Command);
    side = "command";
  } else if (json.Notification) {
    side = "notification";
    const n = json.Notification;
    [name, body] = n.Completion ? only(n.Completion) : only(n);
  }
  const detail = [];
  if (body.request || body.invocation_target) {
    const target = targetText((body.request || body).invocation_target);
    detail.push(`→ ${target}`);
  } else if (row.invoked_target) detail.push(`→ ${row.invoked_target}`);
  if (body.wake_up_time) detail.push(`wakes at ${new Date(body.wake_up_time).toISOString()}`);
  else if (row.sleep_wakeup_at) detail.push(`wakes at ${row.sleep_wakeup_at}`);
  if (body.key && !body.request) detail.push(`key ${body.key}`);
  else if (row.promise_name) detail.push(`promise ${row.promise_name}`);
  if (body.payload) detail.push(bytesText(body.payload));
  if (body.value && side === "command") detail.push(`= ${bytesText(body.value)}`);
  if (body.result !== undefined) detail.push(resultText(body.result));
  return {
    index: row.index,
    side,
    type: name || type,
    kind: kindOf(name || type),
    name: row.name || body.name || "",
    detail: detail.filter(Boolean).join("  "),
    invokedId: (body.request && body.request.invocation_id) || body.invocation_id || row.invoked_id || null,
    completionIds: [body.completion_id, body.result_completion_id].filter((x) => x != null),
    // A call's "invocation id known" notification: folded into the call, not its completion.
    idCompletionId: body.invocation_id_completion_id ?? null,
    completed: row.completed,
    at: row.appended_at ? Date.parse(row.appended_at) : null,
  };
}

/** Timeline items: commands with their completion (if any), then error events in place. */
export function timeline(journalRows, eventRows) {
  const entries = journalRows.map(decodeEntry);
  const items = [];
  const byCompletion = new Map();
  for (const e of entries) {
    if (e.side === "notification" && e.completionIds.length) {
      const owner = byCompletion.get(e.completionIds[0]);
      if (owner) {
        if (owner.idCompletionId !== e.completionIds[0]) owner.done = e;
        continue;
      }
    }
    const item = { ...e, done: null, events: [] };
    if (e.side === "command") for (const id of [...e.completionIds, e.idCompletionId]) if (id != null) byCompletion.set(id, item);
    items.push(item);
  }
  for (const ev of eventRows) {
    const body = parse(ev.event_json);
    const event = {
      kind: "error",
      type: ev.event_type || body.ty || "Event",
      at: ev.appended_at ? Date.parse(ev.appended_at) : null,
      detail: [body.error_code, body.error_message].filter((x) => x != null).join(" "),
      stacktrace: body.error_stacktrace || "",
      after: ev.after_journal_entry_index,
    };
    const host = [...items].reverse().find((i) => i.index <= event.after) || items[items.length - 1];
    if (host) host.events.push(event);
  }
  return items;
}
