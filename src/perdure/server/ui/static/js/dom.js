// Small DOM and formatting helpers shared by the pages.

/** h("a", {href: "#"}, "text", child...): an element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k === "value") continue; // a property, set once the children (options) exist
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  if (attrs && attrs.value !== undefined && attrs.value !== null) el.value = attrs.value;
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const STATUSES = [
  "pending", "scheduled", "ready", "running", "suspended", "backing-off", "paused", "completed",
];

export function statusPill(status, result) {
  const failed = status === "completed" && result === "failure";
  return h("span", { class: `pill st-${status}${failed ? " st-failed" : ""}` },
    failed ? "failed" : status);
}

export function parseTime(text) {
  if (!text) return null;
  const t = Date.parse(text);
  return Number.isNaN(t) ? null : t;
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

/** 2026-12-07 13:04:05.123 in local time. */
export function formatTime(text, { ms = false } = {}) {
  const t = typeof text === "number" ? text : parseTime(text);
  if (t === null) return "";
  const d = new Date(t);
  const s = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return ms ? `${s}.${pad(d.getMilliseconds(), 3)}` : s;
}

/** "3s ago", "in 2m", "5h ago". */
export function relative(text, now = Date.now()) {
  const t = typeof text === "number" ? text : parseTime(text);
  if (t === null) return "";
  const d = (t - now) / 1000;
  const a = Math.abs(d);
  if (a < 1) return "just now";
  const span = Math.round(a) < 60 ? `${Math.round(a)}s` : Math.round(a / 60) < 60 ? `${Math.round(a / 60)}m`
    : Math.round(a / 3600) < 48 ? `${Math.round(a / 3600)}h` : `${Math.round(a / 86400)}d`;
  return d < 0 ? `${span} ago` : `in ${span}`;
}

/** A time cell: relative text, absolute time as the tooltip. */
export function timeCell(text) {
  if (!text) return "";
  return h("time", { datetime: text, title: formatTime(text, { ms: true }) }, relative(text));
}

/** 12 ms, 3.2 s, 4m 10s. */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const total = Math.round(ms / 1000);
  const m = Math.floor(total / 60);
  if (m < 60) return `${m}m ${total % 60}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

export function firstLine(text, width = 120) {
  if (!text) return "";
  const line = String(text).split("\n")[0];
  return line.length > width ? `${line.slice(0, width - 1)}…` : line;
}

export function invLink(id, text) {
  return h("a", { class: "mono", href: `#/invocation/${encodeURIComponent(id)}` }, text || id);
}

/** A short message in the corner. */
export function toast(text, kind = "info") {
  const el = document.getElementById("toast");
  el.textContent = text;
  el.className = kind;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, kind === "error" ? 8000 : 3500);
}

export function errorBox(err) {
  return h("div", { class: "error-box" }, err.message || String(err));
}

/** The current route's query parameters. */
export function routeParams() {
  const q = location.hash.split("?")[1] || "";
  return new URLSearchParams(q);
}

export function setRoute(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) q.set(k, v);
  const s = q.toString();
  const hash = `#${path}${s ? `?${s}` : ""}`;
  if (location.hash !== hash) location.hash = hash;
}
