// Invocations: filters, counts per status, a page of rows (LIMIT/OFFSET in the database), bulk
// verbs on a selection, live refresh. Nothing here loads more than one page of rows.

import { byId, query, sqlString } from "../api.js";
import {
  clear, errorBox, firstLine, h, invLink, routeParams, setRoute, STATUSES, statusPill, timeCell, toast,
} from "../dom.js";
import { runVerb, summary, VERBS } from "./actions.js";

const PAGE = 50;
const COLUMNS = [
  "id", "target", "target_service_name", "status", "created_at", "modified_at", "retry_count",
  "last_failure", "completion_result", "completion_failure", "journal_size", "idempotency_key",
  "invoked_by_id", "next_retry_at",
];
const FILTERS = ["service", "handler", "key", "status", "id", "idempotency_key", "from", "to"];

/** SQL timestamps compare as the server writes them: 2026-01-02T03:04:05.678Z. */
function isoFromLocal(text) {
  const t = Date.parse(text);
  return Number.isNaN(t) ? null : new Date(t).toISOString();
}

function conditions(f, { withStatus = true } = {}) {
  const where = [];
  if (f.service) where.push(`target_service_name = ${sqlString(f.service)}`);
  if (f.handler) where.push(`target_handler_name = ${sqlString(f.handler)}`);
  if (f.key) where.push(`target_service_key = ${sqlString(f.key)}`);
  if (f.id) where.push(byId(f.id.trim()));
  if (f.idempotency_key) where.push(`idempotency_key = ${sqlString(f.idempotency_key)}`);
  const from = f.from && isoFromLocal(f.from);
  const to = f.to && isoFromLocal(f.to);
  if (from) where.push(`created_at >= ${sqlString(from)}`);
  if (to) where.push(`created_at <= ${sqlString(to)}`);
  if (withStatus && f.status) {
    if (f.status === "failed") where.push("status = 'completed' AND completion_result = 'failure'");
    else if (f.status === "active") where.push("status != 'completed'");
    else if (f.status === "failing") where.push("status IN ('backing-off', 'paused')");
    else where.push(`status = ${sqlString(f.status)}`);
  }
  return where.length ? ` WHERE ${where.join(" AND ")}` : "";
}

export async function mount(root) {
  const params = routeParams();
  const f = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) || ""]));
  const page = Math.max(0, parseInt(params.get("page") || "0", 10) || 0);
  const selected = new Set();
  let rows = [];

  const input = (name, placeholder, attrs = {}) =>
    h("input", { name, value: f[name], placeholder, ...attrs });
  const services = h("datalist", { id: "service-names" });
  const statusSelect = h("select", { name: "status" },
    h("option", { value: "" }, "any status"),
    h("option", { value: "active" }, "not completed"),
    h("option", { value: "failing" }, "failing: backing-off or paused"),
    STATUSES.map((s) => h("option", { value: s }, s)),
    h("option", { value: "failed" }, "completed: failed"));
  statusSelect.value = f.status;
  const form = h("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    setRoute("/invocations", data);
  } },
  input("service", "service", { list: "service-names" }), services,
  input("handler", "handler", { size: 10 }),
  input("key", "key", { size: 10 }),
  statusSelect,
  input("id", "invocation id", { size: 22, class: "mono" }),
  input("idempotency_key", "idempotency key", { size: 14 }),
  h("label", { class: "muted" }, "from ", input("from", "", { type: "datetime-local", title: "created at or after" })),
  h("label", { class: "muted" }, "to ", input("to", "", { type: "datetime-local", title: "created at or before" })),
  h("button", { class: "primary", type: "submit" }, "Filter"),
  h("button", { type: "button", onclick: () => setRoute("/invocations", {}) }, "Reset"));

  const counts = h("div", { class: "counts" });
  const bulk = h("div", { class: "bulk" });
  const tableBody = h("tbody");
  const selectAll = h("input", { type: "checkbox", title: "select this page", onchange: () => {
    for (const r of rows) selectAll.checked ? selected.add(r.id) : selected.delete(r.id);
    renderRows();
  } });
  const table = h("table", { class: "grid invocations" },
    h("thead", {}, h("tr", {},
      h("th", { class: "check" }, selectAll), h("th", {}, "id"), h("th", {}, "target"), h("th", {}, "status"),
      h("th", {}, "created"), h("th", {}, "modified"), h("th", { class: "num" }, "retries"),
      h("th", { class: "num" }, "journal"), h("th", {}, "last failure / result"))),
    tableBody);
  const pager = h("div", { class: "pager" });
  const message = h("div");
  clear(root, h("div", { class: "page-head" }, h("h1", {}, "Invocations"), counts), form, bulk, message, table, pager);

  query("SELECT name FROM sys_service ORDER BY name").then((names) => {
    clear(services, names.map((s) => h("option", { value: s.name })));
  }).catch(() => {});

  function goPage(n) {
    setRoute("/invocations", { ...f, page: n || "" });
  }

  function renderBulk() {
    const n = selected.size;
    clear(bulk,
      h("span", { class: "muted" }, n ? `${n} selected` : "select rows for bulk actions"),
      VERBS.map((verb) => h("button", {
        disabled: !n, class: verb === "kill" || verb === "purge" ? "danger" : "",
        "data-verb": verb,
        onclick: async () => {
          if ((verb === "kill" || verb === "purge") && !confirm(`${verb} ${n} invocation(s)?`)) return;
          const outcome = await runVerb(verb, [...selected]);
          toast(summary(verb, outcome), outcome.failed.length ? "error" : "info");
          for (const id of outcome.done) selected.delete(id);
          await refresh();
        },
      }, verb)),
      n ? h("button", { class: "link", onclick: () => { selected.clear(); renderRows(); } }, "clear") : null);
  }

  function renderRows() {
    clear(tableBody, rows.length ? rows.map((r) => h("tr", { "data-id": r.id, class: selected.has(r.id) ? "selected" : "" },
      h("td", { class: "check" }, h("input", { type: "checkbox", checked: selected.has(r.id), onchange: (e) => {
        e.target.checked ? selected.add(r.id) : selected.delete(r.id);
        renderRows();
      } })),
      h("td", {}, invLink(r.id)),
      h("td", { class: "target" }, r.target),
      h("td", {}, statusPill(r.status, r.completion_result)),
      h("td", {}, timeCell(r.created_at)),
      h("td", {}, timeCell(r.modified_at)),
      h("td", { class: "num" }, r.retry_count || ""),
      h("td", { class: "num" }, r.journal_size ?? ""),
      h("td", { class: "failure", title: r.last_failure || r.completion_failure || "" },
        firstLine(r.last_failure || r.completion_failure, 90)),
    )) : h("tr", {}, h("td", { colspan: 9, class: "empty" }, "No invocations match.")));
    selectAll.checked = rows.length > 0 && rows.every((r) => selected.has(r.id));
    renderBulk();
  }

  function renderCounts(byStatus) {
    const total = Object.entries(byStatus).filter(([s]) => s !== "failed").reduce((a, [, n]) => a + n, 0);
    const chip = (status, label, n) => h("a", {
      class: `count${f.status === status ? " active" : ""}`,
      href: "#", onclick: (e) => { e.preventDefault(); setRoute("/invocations", { ...f, status, page: "" }); },
    }, status ? statusPill(status === "failed" ? "completed" : status, status === "failed" ? "failure" : "") : label,
    h("b", {}, n.toLocaleString()));
    const failing = (byStatus["backing-off"] || 0) + (byStatus.paused || 0);
    clear(counts, chip("", "all", total),
      failing ? h("a", {
        class: `count attention${f.status === "failing" ? " active" : ""}`, href: "#",
        title: "invocations whose attempts fail: backing off before a retry, or paused",
        onclick: (e) => { e.preventDefault(); setRoute("/invocations", { ...f, status: "failing", page: "" }); },
      }, "failing", h("b", {}, failing.toLocaleString())) : null,
      STATUSES.filter((s) => byStatus[s]).map((s) => chip(s, s, byStatus[s])),
      byStatus.failed ? chip("failed", "failed", byStatus.failed) : null);
    return total;
  }

  async function refresh() {
    const sql = `SELECT ${COLUMNS.join(", ")} FROM sys_invocation${conditions(f)} ` +
      `ORDER BY created_at DESC, id DESC LIMIT ${PAGE + 1} OFFSET ${page * PAGE}`;
    const countSql = "SELECT status, completion_result, COUNT(*) AS n FROM sys_invocation" +
      `${conditions(f, { withStatus: false })} GROUP BY status, completion_result`;
    let found;
    let countRows;
    try {
      [found, countRows] = await Promise.all([query(sql), query(countSql)]);
    } catch (err) {
      clear(message, errorBox(err));
      return;
    }
    clear(message);
    const more = found.length > PAGE;
    rows = found.slice(0, PAGE);
    const byStatus = {};
    for (const c of countRows) {
      byStatus[c.status] = (byStatus[c.status] || 0) + c.n;
      if (c.status === "completed" && c.completion_result === "failure") byStatus.failed = (byStatus.failed || 0) + c.n;
    }
    const failing = (byStatus["backing-off"] || 0) + (byStatus.paused || 0);
    renderCounts(byStatus);
    const matching = !f.status ? Object.values(byStatus).reduce((a, b) => a + b, 0) - (byStatus.failed || 0)
      : f.status === "active" ? Object.entries(byStatus).filter(([s]) => s !== "completed" && s !== "failed").reduce((a, [, n]) => a + n, 0)
        : f.status === "failing" ? failing
        : byStatus[f.status] || 0;
    renderRows();
    const first = rows.length ? page * PAGE + 1 : 0;
    clear(pager,
      h("button", { disabled: page === 0, onclick: () => goPage(page - 1) }, "← newer"),
      h("span", { class: "muted" }, `${first.toLocaleString()}–${(page * PAGE + rows.length).toLocaleString()} of ${matching.toLocaleString()}, newest first`),
      h("button", { disabled: !more, onclick: () => goPage(page + 1) }, "older →"));
  }

  await refresh();
  return { refresh };
}
