// The router: one page module per hash route (#/invocations, #/invocation/ID, #/services,
// #/state, #/sql), and the live loop that refreshes the open page every 2 seconds.

import { version } from "./api.js";
import { clear, errorBox, h } from "./dom.js";
import * as invocations from "./pages/invocations.js";
import * as invocation from "./pages/invocation.js";
import * as services from "./pages/services.js";
import * as state from "./pages/state.js";
import * as sql from "./pages/sql.js";

const ROUTES = { invocations, invocation, services, state, sql };
const LIVE_MS = 2000;
let current = null;
let routeSeq = 0;

async function route() {
  const hash = location.hash.replace(/^#\/?/, "") || "invocations";
  const [path] = hash.split("?");
  const [name, ...rest] = path.split("/");
  const page = ROUTES[name] ? name : "invocations";
  document.querySelectorAll("nav a").forEach((a) => {
    const active = a.dataset.page === page || (page === "invocation" && a.dataset.page === "invocations");
    a.classList.toggle("active", active);
  });
  const titles = { invocations: "Invocations", invocation: rest[0] || "Invocation", services: "Services", state: "State", sql: "SQL" };
  document.title = `${titles[page]} · perdure`;
  const seq = ++routeSeq;
  current?.unmount?.();
  current = null;
  const root = clear(document.getElementById("page"));
  try {
    const mounted = await ROUTES[page].mount(root, rest.map(decodeURIComponent));
    if (seq === routeSeq) current = mounted;
    else mounted?.unmount?.();
  } catch (err) {
    if (seq === routeSeq) clear(root, errorBox(err));
  }
}

// A refresh that takes long (a big store) makes the next one wait longer: polling never keeps
// the server busy more than a third of the time.
let refreshing = false;
let nextRefresh = 0;
async function tick() {
  if (!document.getElementById("live").checked || document.hidden || refreshing || !current?.refresh) return;
  if (Date.now() < nextRefresh) return;
  refreshing = true;
  const started = Date.now();
  try {
    await current.refresh();
  } catch (err) {
    console.warn("refresh failed", err);
  } finally {
    refreshing = false;
    nextRefresh = started + Math.max(LIVE_MS, 3 * (Date.now() - started));
  }
}

window.addEventListener("hashchange", route);
setInterval(tick, LIVE_MS / 4);
route();
version().then((v) => {
  document.getElementById("server").textContent = `perdure ${v.version}`;
}).catch(() => {});

