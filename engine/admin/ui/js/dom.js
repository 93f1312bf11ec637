// Tiny DOM helpers: the views build elements with h(), never with innerHTML, so data
// from the engine is always text.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** A table: columns are [title, row => cell]; rows get data-id from rowId when given. */
export function table(columns, rows, { rowId, empty = "Nothing here yet." } = {}) {
  if (!rows.length) return h("p", { class: "muted empty" }, empty);
  return h("table", {},
    h("thead", {}, h("tr", {}, columns.map(([title]) => h("th", {}, title)))),
    h("tbody", {}, rows.map((row) =>
      h("tr", { "data-id": rowId ? rowId(row) : null }, columns.map(([, cell]) => h("td", {}, cell(row)))))));
}

export function section(title, ...children) {
  return h("section", {}, h("h2", {}, title), ...children);
}

export function errorBox(err) {
  return h("div", { class: "error", role: "alert" }, String(err.message || err));
}

export function notice(text) {
  return h("div", { class: "notice", role: "status" }, text);
}

/** A button that runs an async action, showing its error (or result) next to it. */
export function actionButton(label, action, { danger = false, confirmLabel } = {}) {
  const out = h("span", { class: "action-result" });
  let armed = false;
  const button = h("button", {
    type: "button",
    class: danger ? "danger" : null,
    "data-action": label.toLowerCase(),
    onclick: async () => {
      if (confirmLabel && !armed) {
        armed = true;
        button.textContent = confirmLabel;
        return;
      }
      button.disabled = true;
      out.replaceChildren();
      try {
        await action();
      } catch (err) {
        out.replaceChildren(errorBox(err));
      } finally {
        button.disabled = false;
        armed = false;
        button.textContent = label;
      }
    },
  }, label);
  return h("span", { class: "action" }, button, out);
}

export function badge(text, kind) {
  return h("span", { class: `badge ${kind || String(text).toLowerCase()}` }, text);
}

export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toISOString().replace("T", " ").replace("Z", "");
}

export function link(href, text) {
  return h("a", { href }, text);
}

/** The query parameters of the current hash route (#/view?a=1&b=2). */
export function routeParams() {
  const hash = location.hash || "";
  const q = hash.indexOf("?");
  return new URLSearchParams(q < 0 ? "" : hash.slice(q + 1));
}

export function routeTo(view, params) {
  const qs = new URLSearchParams(Object.entries(params || {}).filter(([, v]) => v !== "" && v != null)).toString();
  location.hash = `#/${view}${qs ? `?${qs}` : ""}`;
}

/** Render the current route again (after an action changed something). */
export function refresh() {
  window.dispatchEvent(new Event("logstrate:refresh"));
}

/** A row of labelled form controls with a submit button; onsubmit gets the form. */
export function form(attrs, controls, submitLabel, onsubmit) {
  const out = h("div", { class: "form-result" });
  const el = h("form", {
    ...attrs,
    class: "inline-form",
    onsubmit: async (event) => {
      event.preventDefault();
      out.replaceChildren();
      const button = el.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        await onsubmit(el, out);
      } catch (err) {
        out.replaceChildren(errorBox(err));
      } finally {
        button.disabled = false;
      }
    },
  }, controls, h("button", { type: "submit" }, submitLabel));
  return h("div", {}, el, out);
}

export function field(label, control) {
  return h("label", {}, h("span", {}, label), control);
}
