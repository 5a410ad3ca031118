// SQL console over POST /query, with the system tables one click away.

import { query } from "../api.js";
import { clear, errorBox, h } from "../dom.js";

const TABLES = {
  sys_invocation: "SELECT id, target, status, created_at, last_failure FROM sys_invocation ORDER BY created_at DESC LIMIT 50",
  sys_invocation_status: "SELECT id, target, status FROM sys_invocation_status LIMIT 50",
  sys_journal: "SELECT id, index, entry_type, name, appended_at FROM sys_journal LIMIT 50",
  state: "SELECT service_name, service_key, key, value_utf8 FROM state LIMIT 50",
  sys_service: "SELECT * FROM sys_service",
  sys_deployment: "SELECT * FROM sys_deployment",
  sys_inbox: "SELECT * FROM sys_inbox LIMIT 50",
  sys_promise: "SELECT * FROM sys_promise LIMIT 50",
};
const STORE = "perdure.sql";

export async function mount(root) {
  const editor = h("textarea", { class: "sql", rows: 6, spellcheck: false,
    value: sessionStorage.getItem(STORE) || TABLES.sys_invocation,
    onkeydown: (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); } } });
  const out = h("div", { class: "sql-out" });
  const tables = h("ul", { class: "tables" }, Object.entries(TABLES).map(([name, sql]) => h("li", {},
    h("a", { href: "#", class: "mono", onclick: (e) => { e.preventDefault(); editor.value = sql; run(); } }, name))));
  clear(root, h("div", { class: "page-head" }, h("h1", {}, "SQL")),
    h("div", { class: "sql-layout" },
      h("aside", {}, h("h2", {}, "System tables"), tables,
        h("p", { class: "muted small" }, "Read-only. Queries stop after 10 s. Add LIMIT on big tables.")),
      h("div", {}, editor, h("div", { class: "buttons" }, h("button", { class: "primary", onclick: () => run() }, "Run"),
        h("span", { class: "muted small" }, "Ctrl+Enter")), out)));

  async function run() {
    sessionStorage.setItem(STORE, editor.value);
    clear(out, h("span", { class: "muted" }, "running…"));
    const started = performance.now();
    let rows;
    try {
      rows = await query(editor.value);
    } catch (err) {
      clear(out, errorBox(err));
      return;
    }
    const columns = [];
    for (const r of rows) for (const c of Object.keys(r)) if (!columns.includes(c)) columns.push(c);
    clear(out, h("div", { class: "muted small" }, `${rows.length ? rows.length : "no"} row${rows.length === 1 ? "" : "s"} in ${Math.round(performance.now() - started)} ms`),
      h("div", { class: "scroll" }, h("table", { class: "grid results" },
        h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))),
        h("tbody", {}, rows.map((r) => h("tr", {}, columns.map((c) => {
          const v = r[c];
          const text = v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
          return h("td", { title: text.length > 80 ? text : null, class: v === undefined ? "null" : "" },
            c === "id" && /^inv_/.test(text) ? h("a", { class: "mono", href: `#/invocation/${text}` }, text)
              : text.length > 120 ? `${text.slice(0, 119)}…` : text);
        })))))));
  }
  await run();
  return {};
}
