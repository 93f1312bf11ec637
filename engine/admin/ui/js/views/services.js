// Services and deployments: register a deployment by URL, remove one, see every service.
import { api } from "../api.js";
import { actionButton, badge, field, form, h, link, notice, refresh, section, table, fmtTime } from "../dom.js";

function registerForm() {
  return form({ id: "register-form" }, [
    field("Endpoint URL", h("input", { name: "uri", type: "url", required: true, placeholder: "http://localhost:9080", size: 36 })),
    field("HTTP/1.1 only", h("input", { name: "use_http_11", type: "checkbox" })),
    field("Force (replace same URL)", h("input", { name: "force", type: "checkbox" })),
  ], "Register", async (el, out) => {
    const body = { uri: el.uri.value.trim() };
    if (el.use_http_11.checked) body.use_http_11 = true;
    if (el.force.checked) body.force = true;
    const created = await api("POST", "/deployments", body);
    out.replaceChildren(notice(`Registered ${created.id}: ${created.services.map((s) => s.name).join(", ")}`));
    el.reset();
    setTimeout(refresh, 600);
  });
}

async function remove(id, force) {
  await api("DELETE", `/deployments/${encodeURIComponent(id)}${force ? "?force=true" : ""}`);
  setTimeout(refresh, 300);
}

function endpointOf(d) {
  return d.uri || d.arn || "";
}

export async function render(root) {
  const [{ deployments }, { services }] = await Promise.all([api("GET", "/deployments"), api("GET", "/services")]);
  deployments.sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
  services.sort((a, b) => a.name.localeCompare(b.name));
  root.append(
    section("Register a deployment", registerForm()),
    section(`Deployments (${deployments.length})`, table([
      ["Id", (d) => h("code", {}, d.id)],
      ["Endpoint", endpointOf],
      ["Protocol", (d) => d.protocol_type || ""],
      ["Services", (d) => (d.services || []).map((s) => `${s.name} (rev ${s.revision})`).join(", ")],
      ["SDK", (d) => d.sdk_version || ""],
      ["Created", (d) => fmtTime(d.created_at)],
      ["", (d) => h("span", { class: "actions" },
        // Without force the server refuses while invocations still run on the deployment.
        actionButton("Remove", () => remove(d.id, false), { danger: true, confirmLabel: "Confirm remove" }),
        actionButton("Force remove", () => remove(d.id, true), { danger: true, confirmLabel: "Confirm force" }))],
    ], deployments, { rowId: (d) => d.id, empty: "No deployments: register one above." })),
    section(`Services (${services.length})`, table([
      ["Name", (s) => h("strong", {}, s.name)],
      ["Type", (s) => badge(s.ty, "type")],
      ["Handlers", (s) => (s.handlers || []).map((hd) => h("span", { class: "handler" }, hd.name, hd.ty ? h("small", {}, ` ${hd.ty}`) : null))],
      ["Revision", (s) => s.revision],
      ["Deployment", (s) => h("code", {}, s.deployment_id)],
      ["", (s) => h("span", { class: "links" },
        link(`#/invocations?service=${encodeURIComponent(s.name)}`, "invocations"),
        s.ty !== "Service" ? link(`#/state?service=${encodeURIComponent(s.name)}`, "state") : null,
        s.ty === "Workflow" ? link(`#/promises?service=${encodeURIComponent(s.name)}`, "promises") : null)],
    ], services, { rowId: (s) => s.name, empty: "No services yet." })),
  );
}
