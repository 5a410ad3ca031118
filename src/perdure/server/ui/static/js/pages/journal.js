// A journal (sys_journal rows with entry_json) turned into timeline rows: what each entry is,
// its decoded values, and for commands that await a completion (sleep, call, run, promise, lazy
// state) the span from the command to its completion.

import { base64Bytes, decodeBytes } from "../decode.js";
import { parseTime } from "../dom.js";

const text = (b64) => (b64 ? decodeBytes(base64Bytes(b64)) : { kind: "empty", text: "" });
const keyText = (b64) => (b64 ? text(b64).text : "");

function target(b) {
  return [b.service_name, b.key, b.handler_name].filter((p) => p !== undefined && p !== "").join("/");
}

/** The outcome carried by a completion/command body: value, void, failure, ids, keys. */
function outcome(b) {
  if (b.failure) return { label: "failure", failure: `[${b.failure.code ?? ""}] ${b.failure.message ?? ""}` };
  if (b.value !== undefined) return { label: "value", value: text(b.value.content) };
  if (b.void !== undefined) return { label: "void" };
  if (b.invocation_id) return { label: "invocation id", id: b.invocation_id };
  if (b.state_keys) return { label: "keys", value: { kind: "json", value: (b.state_keys.keys || []).map(keyText), text: JSON.stringify((b.state_keys.keys || []).map(keyText)) } };
  return null;
}

function describeCommand(kind, b) {
  const fields = [];
  let title = "";
  switch (kind) {
    case "Input":
      fields.push(["input", text(b.value?.content)]);
      break;
    case "Output":
      if (b.failure) fields.push(["failure", null, `[${b.failure.code}] ${b.failure.message}`]);
      else fields.push(["output", text(b.value?.content)]);
      break;
    case "GetEagerState":
    case "GetLazyState":
    case "SetState":
    case "ClearState":
      title = keyText(b.key);
      if (kind === "SetState") fields.push(["value", text(b.value?.content)]);
      if (kind === "GetEagerState") fields.push(["value", b.value ? text(b.value.content) : { kind: "empty", text: "" }]);
      break;
    case "GetEagerStateKeys":
      fields.push(["keys", { kind: "json", value: (b.value?.keys || []).map(keyText), text: JSON.stringify((b.value?.keys || []).map(keyText)) }]);
      break;
    case "Sleep":
      title = `until ${new Date(Number(b.wake_up_time)).toISOString()}`;
      break;
    case "Call":
    case "OneWayCall":
      title = target(b);
      fields.push(["parameter", text(b.parameter)]);
      if (b.idempotency_key) fields.push(["idempotency key", null, b.idempotency_key]);
      if (b.invoke_time && b.invoke_time !== "0") fields.push(["invoke at", null, new Date(Number(b.invoke_time)).toISOString()]);
      break;
    case "Run":
      title = b.name || "";
      break;
    case "GetPromise":
    case "PeekPromise":
    case "CompletePromise":
      title = b.key || "";
      if (b.completion) {
        const o = outcome(b.completion);
        if (o?.value) fields.push(["value", o.value]);
        if (o?.failure) fields.push(["failure", null, o.failure]);
      }
      break;
    case "SendSignal":
      title = b.target_invocation_id || "";
      if (b.value) fields.push(["value", text(b.value.content)]);
      break;
    case "CompleteAwakeable":
      title = b.awakeable_id || "";
      if (b.value) fields.push(["value", text(b.value.content)]);
      if (b.failure) fields.push(["failure", null, `[${b.failure.code}] ${b.failure.message}`]);
      break;
    case "AttachInvocation":
    case "GetInvocationOutput":
      title = b.invocation_id || "";
      break;
    default:
      break;
  }
  return { title, fields };
}

/**
 * Timeline rows from sys_journal rows (ordered by index). Each row: {index, at (ms), kind
 * ("command"|"notification"), type, name, title, fields: [[label, decoded, text]], span,
 * completes (index of the command a notification completes), child (invocation id)}.
 */
export function timeline(entries) {
  const rows = [];
  const byCompletion = new Map(); // completion id -> command row
  const byIdNotification = new Map(); // invocation_id_notification_idx -> call row
  for (const e of entries) {
    let parsed = null;
    try { parsed = JSON.parse(e.entry_json || "null"); } catch { parsed = null; }
    const outer = parsed?.Command ? "command" : parsed?.Notification ? "notification" : "unknown";
    const [kind, body] = Object.entries((parsed && (parsed.Command || parsed.Notification)) || {})[0] || [e.entry_type || "?", {}];
    const row = {
      index: e.index, at: parseTime(e.appended_at), kind: outer,
      type: kind.replace(/Completion$/, "").replace(/Command$/, ""),
      entryType: e.entry_type || "", name: e.name || "", title: "", fields: [], span: null,
      completes: null, child: null, result: null,
    };
    if (outer === "command") {
      Object.assign(row, describeCommand(kind, body));
      if (body.result_completion_id !== undefined) {
        byCompletion.set(body.result_completion_id, row);
        row.span = { from: row.at, to: null, kind: kind === "Sleep" ? "sleep" : kind === "Call" ? "call" : "await" };
        if (kind === "Sleep") row.span.planned = Number(body.wake_up_time);
      }
      if (body.invocation_id_notification_idx !== undefined) byIdNotification.set(body.invocation_id_notification_idx, row);
    } else if (outer === "notification") {
      const o = outcome(body);
      const id = body.completion_id;
      const cmd = id !== undefined ? (byCompletion.get(id) || byIdNotification.get(id)) : null;
      if (cmd) {
        row.completes = cmd.index;
        if (byIdNotification.get(id) === cmd && o?.id) {
          cmd.child = o.id;
        } else if (cmd.span) {
          cmd.span.to = row.at;
          cmd.result = o;
        }
      }
      if (kind === "Signal") row.title = body.signal_name || `signal ${body.signal_id ?? ""}`;
      if (o?.value) row.fields.push(["result", o.value]);
      if (o?.failure) row.fields.push(["failure", null, o.failure]);
      if (o?.id) row.child = o.id;
      if (o?.label === "void") row.fields.push(["result", null, "void"]);
    }
    rows.push(row);
  }
  return rows;
}

/** The invocations this one called or sent to: [{id, index, type, target}]. */
export function children(rows) {
  return rows.filter((r) => r.child && r.kind === "command").map((r) => ({ id: r.child, index: r.index, type: r.type, target: r.title }));
}
