// The invocation actions (admin API PATCH /invocations/{id}/...), offered by status.
import { api } from "../api.js";
import { actionButton, h, refresh, routeTo } from "../dom.js";

const ACTIONS = {
  cancel: { label: "Cancel", when: (s) => s !== "completed" },
  kill: { label: "Kill", when: (s) => s !== "completed", danger: true },
  pause: { label: "Pause", when: (s) => ["running", "backing-off", "ready"].includes(s) },
  resume: { label: "Resume", when: (s) => ["paused", "suspended", "backing-off"].includes(s) },
  purge: { label: "Purge", when: (s) => s === "completed", danger: true },
  "restart-as-new": { label: "Restart", when: (s) => s === "completed" },
};

async function run(id, name) {
  const answer = await api("PATCH", `/invocations/${encodeURIComponent(id)}/${name}`);
  if (name === "restart-as-new" && answer && answer.new_invocation_id) {
    routeTo(`invocation/${answer.new_invocation_id}`);
    return;
  }
  if (name === "purge") {
    routeTo("invocations");
    return;
  }
  // Give the engine a moment to apply the record, then show what it did.
  setTimeout(refresh, 400);
}

/** The buttons for the actions that make sense for an invocation in `status`. */
export function invocationActions(id, status) {
  return h("span", { class: "actions" },
    Object.entries(ACTIONS)
      .filter(([, a]) => a.when(status))
      .map(([name, a]) => actionButton(a.label, () => run(id, name),
        { danger: a.danger, confirmLabel: a.danger ? `Confirm ${a.label.toLowerCase()}` : undefined })));
}
