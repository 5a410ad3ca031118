// State: pick a virtual object or workflow, browse its keys (paged in the database), view each
// entry decoded, and edit, add or delete entries. An edit sends the whole new state with the
// version of what was read, so a concurrent change makes the server refuse it (409).

import { api, query, sqlString } from "../api.js";
import { clear, errorBox, h, invLink, routeParams, setRoute, toast } from "../dom.js";
import { decodeBytes, hexBytes, payload, stateVersion } from "../decode.js";

const PAGE = 100;
const encoder = new TextEncoder();

export async function mount(root) {
  const params = routeParams();
  const service = params.get("service") || "";
  const key = params.get("key");
  const prefix = params.get("prefix") || "";
  const page = Math.max(0, parseInt(params.get("page") || "0", 10) || 0);
  const { services } = await api("GET", "/services");
  const keyed = services.filter((s) => s.ty !== "Service").sort((a, b) => a.name.localeCompare(b.name));
  const kind = keyed.find((s) => s.name === service)?.ty;

  const select = h("select", { name: "service", class: "wide", onchange: () => setRoute("/state", { service: select.value }) },
    h("option", { value: "" }, "choose a service"), keyed.map((s) => h("option", { value: s.name }, `${s.name} (${s.ty})`)));
  select.value = service;
  const keyForm = h("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(keyForm));
    if (data.open) setRoute("/state", { service, key: data.open });
    else setRoute("/state", { service, prefix: data.prefix });
  } }, select,
  h("input", { name: "prefix", class: "wide", placeholder: "keys starting with", value: prefix }),
  h("input", { name: "open", class: "wide", placeholder: "open key" }),
  h("button", { class: "primary" }, "Go"));
  const keys = h("div", { class: "keys" });
  const entries = h("div", { class: "entries" });
  clear(root, h("div", { class: "page-head" }, h("h1", {}, "State")), keyForm, h("div", { class: "state-layout" }, keys, entries));
  if (!service) {
    clear(keys, h("p", { class: "muted" }, keyed.length ? "Choose a virtual object or workflow." : "No virtual objects or workflows are registered."));
    return {};
  }

  async function loadKeys() {
    const cond = `service_name = ${sqlString(service)}` +
      (prefix ? ` AND service_key >= ${sqlString(prefix)} AND service_key < ${sqlString(`${prefix}\u{10FFFF}`)}` : "");
    const rows = await query(`SELECT service_key, COUNT(*) AS entries FROM state WHERE ${cond} GROUP BY service_key ORDER BY service_key LIMIT ${PAGE + 1} OFFSET ${page * PAGE}`);
    const more = rows.length > PAGE;
    clear(keys, h("table", { class: "grid" }, h("thead", {}, h("tr", {}, h("th", {}, "key"), h("th", { class: "num" }, "entries"))),
      h("tbody", {}, rows.slice(0, PAGE).map((r) => h("tr", { class: r.service_key === key ? "selected" : "" },
        h("td", {}, h("a", { class: "mono", href: `#/state?service=${encodeURIComponent(service)}&key=${encodeURIComponent(r.service_key)}` }, r.service_key)),
        h("td", { class: "num" }, r.entries))),
      rows.length ? null : h("tr", {}, h("td", { colspan: 2, class: "empty" }, "No keys with state.")))),
    h("div", { class: "pager" },
      h("button", { disabled: page === 0, onclick: () => setRoute("/state", { service, prefix, page: page - 1 || "" }) }, "←"),
      h("span", { class: "muted" }, `page ${page + 1}`),
      h("button", { disabled: !more, onclick: () => setRoute("/state", { service, prefix, page: page + 1 }) }, "→")));
  }

  async function loadEntries() {
    if (key === null) {
      clear(entries, h("p", { class: "muted" }, "Choose a key."));
      return;
    }
    const rows = await query(`SELECT key, value FROM state WHERE service_name = ${sqlString(service)} AND service_key = ${sqlString(key)} ORDER BY key`);
    const state = rows.map((r) => [r.key, hexBytes(r.value || "")]);
    const version = await stateVersion(state.map(([k, v]) => [encoder.encode(k), v]));

    async function write(next, what) {
      const newState = {};
      for (const [k, v] of next) newState[k] = Array.from(v);
      try {
        await api("POST", `/services/${encodeURIComponent(service)}/state`, { object_key: key, version, new_state: newState });
        toast(`${what}; the edit applies once no handler holds ${key}`);
      } catch (err) {
        toast(err.status === 409 ? `${err.message}: reloaded, edit again` : `edit failed: ${err.message}`, "error");
      }
      await Promise.all([loadEntries(), loadKeys()]);
    }

    const editor = (k, v) => {
      const d = decodeBytes(v);
      const area = h("textarea", { rows: Math.min(12, (d.kind === "json" ? JSON.stringify(d.value, null, 2) : d.text).split("\n").length + 1), spellcheck: false,
        value: d.kind === "json" ? JSON.stringify(d.value, null, 2) : d.text });
      const save = h("button", { class: "primary", onclick: () => {
        let bytes;
        if (d.kind === "json" || asJson.checked) {
          try { bytes = encoder.encode(JSON.stringify(JSON.parse(area.value))); } catch (err) {
            toast(`not JSON: ${err.message}`, "error");
            return;
          }
        } else bytes = encoder.encode(area.value);
        write(state.map(([sk, sv]) => [sk, sk === k ? bytes : sv]), `saved ${k}`);
      } }, "Save");
      const asJson = h("input", { type: "checkbox", checked: d.kind === "json" });
      return h("div", { class: "editor" }, area, h("div", { class: "buttons" }, save,
        h("label", { class: "muted" }, asJson, " JSON"),
        h("button", { onclick: () => { loadEntries(); } }, "Cancel")));
    };

    const table = h("table", { class: "grid state-entries" },
      h("thead", {}, h("tr", {}, h("th", {}, "entry"), h("th", {}, "value"), h("th", { class: "num" }, "bytes"), h("th", {}, ""))),
      h("tbody", {}, state.map(([k, v]) => {
        const cell = h("td", { class: "value" }, payload(decodeBytes(v), { open: false }));
        return h("tr", { "data-entry": k },
          h("td", { class: "mono" }, k), cell, h("td", { class: "num muted" }, v.length),
          h("td", { class: "row-actions" },
            h("button", { class: "small", onclick: () => clear(cell, editor(k, v)) }, "edit"),
            h("button", { class: "small danger", onclick: () => {
              if (confirm(`Delete ${k}?`)) write(state.filter(([sk]) => sk !== k), `deleted ${k}`);
            } }, "delete")));
      }), state.length ? null : h("tr", {}, h("td", { colspan: 4, class: "empty" }, "No state for this key."))));
    const add = h("form", { class: "add-entry", onsubmit: (e) => {
      e.preventDefault();
      const data = Object.fromEntries(new FormData(add));
      let text = data.value;
      try { text = JSON.stringify(JSON.parse(text)); } catch { /* stored as text */ }
      write([...state.filter(([sk]) => sk !== data.name), [data.name, encoder.encode(text)]], `set ${data.name}`);
    } }, h("input", { name: "name", placeholder: "entry name", required: true, size: 14 }),
    h("input", { name: "value", placeholder: "value (JSON or text)", required: true, size: 30 }),
    h("button", {}, "Add entry"));
    const where = `service_name = ${sqlString(service)} AND service_key = ${sqlString(key)}`;
    const [queue, promises] = await Promise.all([
      query(`SELECT id FROM sys_inbox WHERE ${where} ORDER BY sequence_number LIMIT 20`),
      kind === "Workflow"
        ? query(`SELECT key, completion_success_value, completion_failure FROM sys_promise WHERE ${where} ORDER BY key LIMIT 200`)
        : Promise.resolve([]),
    ]);
    const queueBox = queue.length ? h("div", { class: "queue" }, h("h3", {}, `Queued on this key (${queue.length}${queue.length === 20 ? "+" : ""})`),
      h("ol", {}, queue.map((q) => h("li", {}, invLink(q.id))))) : null;
    const promiseBox = kind === "Workflow" ? h("div", { class: "promises" }, h("h3", {}, "Promises"),
      promises.length ? h("table", { class: "grid" }, h("thead", {}, h("tr", {}, h("th", {}, "promise"), h("th", {}, "value"))),
        h("tbody", {}, promises.map((pr) => h("tr", {}, h("td", { class: "mono" }, pr.key),
          h("td", {}, pr.completion_failure ? h("span", { class: "bad mono" }, pr.completion_failure)
            : payload(decodeBytes(hexBytes(pr.completion_success_value || ""))))))))
        : h("p", { class: "muted" }, "No completed promises.")) : null;
    clear(entries, h("h2", {}, h("span", { class: "mono" }, `${service}/${key}`), " ", h("span", { class: "muted small" }, `version ${version}`),
      h("a", { class: "small", href: `#/invocations?service=${encodeURIComponent(service)}&key=${encodeURIComponent(key)}` }, "invocations of this key")),
      table, add, queueBox, promiseBox);
  }

  try {
    await Promise.all([loadKeys(), loadEntries()]);
  } catch (err) {
    clear(entries, errorBox(err));
  }
  return {};
}
