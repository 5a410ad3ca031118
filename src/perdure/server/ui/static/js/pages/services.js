// Services and deployments: each service's handlers with type and options, input/output JSON
// schemas, a form that calls a handler through the ingress, and deployment register/remove.

import { api, callHandler } from "../api.js";
import { clear, errorBox, h, invLink, timeCell, toast } from "../dom.js";
import { decodeBytes, payload } from "../decode.js";

const OPTION_NAMES = [
  ["inactivity_timeout", "inactivity timeout"], ["abort_timeout", "abort timeout"],
  ["idempotency_retention", "idempotency retention"], ["journal_retention", "journal retention"],
  ["workflow_completion_retention", "workflow retention"],
];

function retryText(p) {
  if (!p || p.max_attempts === null && !p.initial_interval) return "default";
  const parts = [];
  if (p.initial_interval) parts.push(`start ${p.initial_interval}`);
  if (p.exponentiation_factor) parts.push(`×${p.exponentiation_factor}`);
  if (p.max_interval) parts.push(`max ${p.max_interval}`);
  parts.push(p.max_attempts ? `${p.max_attempts} attempts` : "unlimited attempts");
  if (p.on_max_attempts) parts.push(`then ${p.on_max_attempts.toLowerCase()}`);
  return parts.join(", ");
}

/** The service's options (its defaults for every handler). */
function serviceOptions(service) {
  return h("dl", { class: "options wide" },
    OPTION_NAMES.filter(([n]) => service[n] !== undefined).map(([n, label]) => h("div", {}, h("dt", {}, label), h("dd", {}, service[n]))),
    h("div", {}, h("dt", {}, "retry policy"), h("dd", {}, retryText(service.retry_policy))),
    h("div", {}, h("dt", {}, "lazy state"), h("dd", {}, service.enable_lazy_state ? "on" : "off")),
    h("div", {}, h("dt", {}, "ingress"), h("dd", {}, service.public ? "public" : "private")));
}

/** What a handler sets differently from its service. */
function handlerOptions(handler) {
  const own = OPTION_NAMES.filter(([n]) => handler[n] !== undefined).map(([n, label]) => [label, handler[n]]);
  if (handler.retry_policy?.max_attempts !== null && handler.retry_policy?.initial_interval) own.push(["retry policy", retryText(handler.retry_policy)]);
  if (handler.enable_lazy_state !== undefined) own.push(["lazy state", handler.enable_lazy_state ? "on" : "off"]);
  if (!own.length) return null;
  return h("dl", { class: "options" }, own.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function exampleFor(schema, depth = 0) {
  if (!schema || depth > 4) return null;
  if (schema.default !== undefined) return schema.default;
  if (schema.examples?.length) return schema.examples[0];
  const t = Array.isArray(schema.type) ? schema.type.find((x) => x !== "null") : schema.type;
  switch (t) {
    case "object": {
      const out = {};
      for (const [k, v] of Object.entries(schema.properties || {})) out[k] = exampleFor(v, depth + 1);
      return out;
    }
    case "array": return [];
    case "string": return "";
    case "integer": case "number": return 0;
    case "boolean": return false;
    default: return null;
  }
}

function callForm(service, handler) {
  const keyed = service.ty !== "Service";
  const takesInput = handler.input_description !== "none";
  const example = handler.input_json_schema ? exampleFor(handler.input_json_schema) : null;
  const result = h("div", { class: "call-result" });
  const form = h("form", { class: "call-form", onsubmit: (e) => { e.preventDefault(); submit(e.submitter?.value || "call"); } },
    keyed ? h("label", {}, "key ", h("input", { name: "key", required: true, size: 16, placeholder: service.ty === "Workflow" ? "workflow id" : "object key" })) : null,
    h("label", {}, "idempotency key ", h("input", { name: "idempotency", size: 14, placeholder: "optional" })),
    h("label", {}, "delay ", h("input", { name: "delay", size: 6, placeholder: "e.g. 10s" })),
    takesInput ? h("textarea", { name: "body", rows: 1, spellcheck: false, placeholder: "JSON input",
      value: example === null ? "" : JSON.stringify(example) }) : null,
    h("div", { class: "buttons" },
      h("button", { class: "primary", value: "call", type: "submit" }, "Call"),
      h("button", { value: "send", type: "submit" }, "Send (no wait)")),
    result);

  async function submit(mode) {
    const data = Object.fromEntries(new FormData(form));
    const parts = [service.name, ...(keyed ? [data.key] : []), handler.name].map(encodeURIComponent);
    const send = mode === "send" || data.delay;
    let path = `${parts.join("/")}${send ? "/send" : ""}`;
    if (data.delay) path += `?delay=${encodeURIComponent(data.delay)}`;
    let body;
    if (takesInput && data.body?.trim()) {
      try { JSON.parse(data.body); } catch (err) {
        clear(result, errorBox(new Error(`the input is not JSON: ${err.message}`)));
        return;
      }
      body = data.body;
    }
    clear(result, h("span", { class: "muted" }, send ? "sending…" : "calling… (waits for the result)"));
    const started = performance.now();
    let resp;
    try {
      resp = await callHandler(path, { body, idempotencyKey: data.idempotency });
    } catch (err) {
      clear(result, errorBox(new Error(`the call failed: ${err.message}`)));
      return;
    }
    const bytes = new Uint8Array(await resp.arrayBuffer());
    const decoded = decodeBytes(bytes);
    const id = resp.headers.get("x-restate-id") || (decoded.kind === "json" && decoded.value?.invocationId);
    clear(result,
      h("div", {}, h("span", { class: `pill ${resp.ok ? "st-completed" : "st-failed"}` }, String(resp.status)),
        " ", h("span", { class: "muted" }, `${Math.round(performance.now() - started)} ms`),
        id ? [" ", invLink(id)] : null),
      h("div", { class: "output" }, payload(decoded, { open: true })));
  }
  return form;
}

function handlerCard(service, handler) {
  const schemas = [["input", handler.input_json_schema, handler.input_description], ["output", handler.output_json_schema, handler.output_description]];
  return h("div", { class: "handler", "data-handler": handler.name },
    h("div", { class: "handler-head" },
      h("b", { class: "mono" }, handler.name),
      handler.ty ? h("span", { class: "tag" }, handler.ty) : null,
      handler.public === false ? h("span", { class: "tag muted" }, "private") : null,
      h("span", { class: "muted" }, `${handler.input_description} → ${handler.output_description}`),
      h("span", { class: "spacer" }),
      h("a", { href: `#/invocations?service=${encodeURIComponent(service.name)}&handler=${encodeURIComponent(handler.name)}` }, "invocations")),
    handler.documentation ? h("p", { class: "doc" }, handler.documentation) : null,
    h("div", { class: "handler-body" },
      h("div", { class: "handler-side" }, handlerOptions(handler),
        h("div", { class: "schemas" }, schemas.filter(([, s]) => s).map(([label, s]) =>
        h("details", {}, h("summary", {}, `${label} schema`), h("pre", { class: "json" }, JSON.stringify(s, null, 2)))))),
      handler.public === false ? h("p", { class: "muted" }, "ingress-private: only other handlers can call it")
        : callForm(service, handler)));
}

export async function mount(root, [selected]) {
  const list = h("div", { class: "svc-list" });
  const detail = h("div", { class: "svc-detail" });
  const deployments = h("section", { class: "deployments" });
  clear(root, h("div", { class: "page-head" }, h("h1", {}, "Services & deployments")),
    h("div", { class: "svc-layout" }, list, detail), deployments);

  async function load() {
    const [{ services }, { deployments: deps }] = await Promise.all([api("GET", "/services"), api("GET", "/deployments")]);
    services.sort((a, b) => a.name.localeCompare(b.name));
    const current = services.find((s) => s.name === selected) || services[0];
    clear(list, services.length ? services.map((s) => h("a", {
      class: `svc${s === current ? " active" : ""}`, href: `#/services/${encodeURIComponent(s.name)}`,
    }, h("span", { class: "mono" }, s.name), h("span", { class: "tag" }, s.ty))) : h("p", { class: "muted" }, "No services yet: register a deployment below."));
    if (current) {
      clear(detail,
        h("div", { class: "svc-title" }, h("h2", {}, current.name), h("span", { class: "tag" }, current.ty),
          h("span", { class: "muted" }, `revision ${current.revision} · deployment `, h("span", { class: "mono" }, current.deployment_id)),
          h("span", { class: "spacer" }),
          current.ty !== "Service" ? h("a", { href: `#/state?service=${encodeURIComponent(current.name)}` }, "state") : null,
          h("a", { href: `#/invocations?service=${encodeURIComponent(current.name)}` }, "invocations")),
        current.documentation ? h("p", { class: "doc" }, current.documentation) : null,
        serviceOptions(current),
        current.handlers.map((hd) => handlerCard(current, hd)));
    } else clear(detail);
    renderDeployments(deps);
  }

  function renderDeployments(deps) {
    const form = h("form", { class: "register", onsubmit: async (e) => {
      e.preventDefault();
      const data = Object.fromEntries(new FormData(form));
      try {
        const answer = await api("POST", "/deployments", { uri: data.uri, use_http_11: !!data.http11, force: !!data.force });
        toast(`registered ${answer.id}: ${answer.services.map((s) => s.name).join(", ")}`);
        await load();
      } catch (err) {
        toast(`registering failed: ${err.message}`, "error");
      }
    } },
    h("input", { name: "uri", placeholder: "http://localhost:9080", required: true, size: 30 }),
    h("label", {}, h("input", { type: "checkbox", name: "http11" }), " HTTP/1.1"),
    h("label", {}, h("input", { type: "checkbox", name: "force" }), " force"),
    h("button", { class: "primary" }, "Register deployment"));
    clear(deployments, h("h2", {}, "Deployments"),
      h("table", { class: "grid" },
        h("thead", {}, h("tr", {}, ["id", "uri", "protocol", "services", "sdk", "created", ""].map((c) => h("th", {}, c)))),
        h("tbody", {}, deps.map((d) => h("tr", {},
          h("td", { class: "mono" }, d.id), h("td", { class: "mono" }, d.uri),
          h("td", {}, `${d.protocol_type} · ${d.http_version} · v${d.min_protocol_version}–${d.max_protocol_version}`),
          h("td", {}, d.services.map((s) => s.name).join(", ")),
          h("td", { class: "muted" }, d.sdk_version || ""),
          h("td", {}, timeCell(d.created_at)),
          h("td", {}, h("button", { class: "danger small", onclick: async () => {
            if (!confirm(`Remove deployment ${d.id} (${d.uri})? Its services are removed with it.`)) return;
            try {
              await api("DELETE", `/deployments/${encodeURIComponent(d.id)}?force=true`);
              toast(`removed ${d.id}`);
              await load();
            } catch (err) {
              toast(`removing failed: ${err.message}`, "error");
            }
          } }, "remove")))))),
      form);
  }

  try {
    await load();
  } catch (err) {
    clear(root, errorBox(err));
  }
  return {};
}
