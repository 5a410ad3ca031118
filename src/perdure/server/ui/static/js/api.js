// The admin API, as the UI uses it: JSON requests with the bearer token (if the user gave one),
// a token prompt when the API answers 401, and errors carrying the server's message.

const TOKEN_KEY = "perdure.adminToken";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let asking = null; // one prompt at a time, shared by concurrent requests

function askToken() {
  if (asking) return asking;
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  input.value = "";
  asking = new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        asking = null;
        const token = dialog.returnValue === "ok" ? input.value.trim() : "";
        if (token) sessionStorage.setItem(TOKEN_KEY, token);
        resolve(token || null);
      },
      { once: true },
    );
    dialog.showModal();
  });
  return asking;
}

export function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { authorization: `Bearer ${token}` } : {};
}

async function messageOf(resp) {
  const text = await resp.text();
  try {
    const body = JSON.parse(text);
    return body.message || text;
  } catch {
    return text || resp.statusText;
  }
}

// The admin API's root: where /ui/ is served (also behind a proxy that adds a path prefix).
const BASE = location.pathname.replace(/\/ui\/.*$/, "");

/** One admin API request; the parsed JSON answer (null when empty). */
export async function api(method, path, body) {
  for (;;) {
    const headers = { accept: "application/json", ...authHeaders() };
    const init = { method, headers };
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(BASE + path, init);
    if (resp.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      if ((await askToken()) !== null) continue;
      throw new ApiError(401, "the admin API needs a token");
    }
    if (!resp.ok) throw new ApiError(resp.status, await messageOf(resp));
    const text = await resp.text();
    return text ? JSON.parse(text) : null;
  }
}

/**
 * Call a handler: POST to the ingress path (``Greeter/greet``, ``Cart/ann/add/send?delay=1s``)
 * through the admin port, which hands it to the ingress in-process. The raw Response.
 */
export async function callHandler(path, { body, idempotencyKey } = {}) {
  for (;;) {
    // The admin API takes writes only as JSON; an empty body reaches the handler without one.
    const headers = { "content-type": "application/json", ...authHeaders() };
    if (idempotencyKey) headers["idempotency-key"] = idempotencyKey;
    const resp = await fetch(`${BASE}/ui/ingress/${path}`, { method: "POST", headers, body: body ?? "" });
    if (resp.status !== 401) return resp;
    sessionStorage.removeItem(TOKEN_KEY);
    if ((await askToken()) === null) return resp;
  }
}

/** Rows of a /query statement. */
export async function query(sql) {
  const answer = await api("POST", "/query", { query: sql });
  return answer.rows;
}

/** A SQL string literal. */
export function sqlString(value) {
  return `'${String(value).replaceAll("'", "''")}'`;
}

// The partition key is the first 11 base62 characters after "inv_1": a byte-swapped u64. A
// lookup by (partition_key, id) uses the store's primary key instead of scanning every row.
const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

export function partitionKeys(id) {
  if (!/^inv_1[0-9a-zA-Z]{33}$/.test(id)) return null;
  let n = 0n;
  for (const c of id.slice(5, 16)) n = n * 62n + BigInt(ALPHABET.indexOf(c));
  if (n >> 64n) return null;
  let swapped = 0n;
  for (let i = 0; i < 8; i++) swapped = (swapped << 8n) | ((n >> BigInt(8 * i)) & 0xffn);
  const signed = swapped >= 1n << 63n ? swapped - (1n << 64n) : swapped;
  return signed === swapped ? [swapped] : [signed, swapped];
}

/** A WHERE condition selecting one invocation by id, by primary key when the id is valid. */
export function byId(id) {
  const keys = partitionKeys(id);
  const pk = keys ? `partition_key IN (${keys.join(", ")}) AND ` : "";
  return `${pk}id = ${sqlString(id)}`;
}

/** Several invocations by id. */
export function byIds(ids) {
  return ids.length ? ids.map((id) => `(${byId(id)})`).join(" OR ") : "0";
}

let versionInfo = null;
export async function version() {
  versionInfo ??= await api("GET", "/version");
  return versionInfo;
}
