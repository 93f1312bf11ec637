// The admin API and POST /query of the origin that served this page; nothing else.
// The optional admin token lives in sessionStorage (gone when the tab closes) and goes
// out as "Authorization: Bearer" on every request.

const TOKEN_KEY = "logstrate.adminToken";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function headers(extra) {
  const h = { ...extra };
  const token = getToken();
  if (token) h.Authorization = `Bearer ${token}`;
  return h;
}

async function failure(resp) {
  const text = await resp.text();
  let message = text;
  try {
    const body = JSON.parse(text);
    message = body.message || text;
  } catch (_) { /* not JSON: keep the text */ }
  if (resp.status === 401) {
    // The engine wants an admin token (none, or not this one): ask for it again.
    window.dispatchEvent(new CustomEvent("logstrate:unauthorized", { detail: message }));
    message = `${message || "unauthorized"} — enter the admin token`;
  } else if (resp.status === 403) {
    message = `${message || "forbidden"} — enter the admin token at the top right`;
  }
  return new ApiError(resp.status, `${resp.status}: ${message || resp.statusText}`);
}

/** Call the admin API: `api("GET", "/services")`; JSON in and out, null for an empty answer. */
export async function api(method, path, body) {
  const init = { method, headers: headers({ Accept: "application/json" }) };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  if (!resp.ok) throw await failure(resp);
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

/** Rows of a SQL query over Restate's introspection tables (POST /query). */
export async function sql(query) {
  const answer = await api("POST", "/query", { query });
  return answer.rows || [];
}

/** A SQL string literal. */
export function lit(text) {
  return `'${String(text).replaceAll("'", "''")}'`;
}
