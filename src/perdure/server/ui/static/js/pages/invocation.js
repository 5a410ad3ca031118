// One invocation: header (target, status, deployment, retries, failure, next retry), deadlock
// warning, actions, call tree, and the journal as a timeline with spans. Refreshes live.

import { api, byId, byIds, query, sqlString } from "../api.js";
import {
  clear, duration, errorBox, formatTime, h, invLink, parseTime, relative, statusPill, timeCell, toast,
} from "../dom.js";
import { payload } from "../decode.js";
import { applies, runVerb, summary, VERBS } from "./actions.js";
import { children, timeline } from "./journal.js";

const JOURNAL_LIMIT = 2000;

export async function mount(root, [id]) {
  let signature = "";
  const body = h("div", { class: "invocation" });
  clear(root, body);

  async function load() {
    const [inv] = await query(`SELECT * FROM sys_invocation WHERE ${byId(id)}`);
    if (!inv) return { inv: null };
    const [entries, described] = await Promise.all([
      query(`SELECT index, entry_type, name, appended_at, entry_json FROM sys_journal WHERE ${byId(id)} ORDER BY index LIMIT ${JOURNAL_LIMIT}`),
      api("GET", `/invocations/${encodeURIComponent(id)}`).catch(() => null),
    ]);
    const rows = timeline(entries);
    const kids = children(rows);
    const related = [...kids.map((k) => k.id), inv.invoked_by_id].filter(Boolean);
    const statuses = related.length
      ? await query(`SELECT id, target, status, completion_result FROM sys_invocation WHERE ${byIds(related)}`)
      : [];
    // A pending invocation waits for the key's lock: who holds it (only looked up when pending).
    const holders = inv.status === "pending" && inv.target_service_key !== undefined
      ? await query("SELECT id, target, status FROM sys_invocation WHERE " +
        `target_service_name = ${sqlString(inv.target_service_name)} AND ` +
        `target_service_key = ${sqlString(inv.target_service_key)} AND ` +
        "status NOT IN ('pending', 'scheduled', 'completed') LIMIT 3")
      : [];
    return { inv, rows, kids, holders, deadlock: described?.deadlock || null, entries: entries.length,
      statuses: Object.fromEntries(statuses.map((s) => [s.id, s])) };
  }

  function render(data) {
    const openKeys = new Set([...body.querySelectorAll("details[open]")].map((d) => d.dataset.key));
    const { inv } = data;
    if (!inv) {
      clear(body, h("h1", {}, "Invocation ", h("span", { class: "mono" }, id)),
        errorBox(new Error("Not found: it never existed, or it completed and its retention ended (then it was purged).")));
      return;
    }
    clear(body, header(data), data.deadlock ? deadlockBox(data.deadlock) : null, waitingBox(data), failureBox(inv),
      h("div", { class: "columns" },
        h("section", { class: "timeline-section" }, h("h2", {}, "Journal ", h("span", { class: "muted" }, `${data.entries} ${data.entries === 1 ? "entry" : "entries"}`)),
          timelineTable(inv, data.rows, data.entries)),
        h("aside", {}, callTree(inv, data))));
    for (const d of body.querySelectorAll("details[data-key]")) if (openKeys.has(d.dataset.key)) d.open = true;
  }

  function header({ inv }) {
    const created = parseTime(inv.created_at);
    const end = parseTime(inv.completed_at) ?? Date.now();
    const fields = [
      ["status", statusPill(inv.status, inv.completion_result)],
      ["created", timeCell(inv.created_at)],
      ["modified", timeCell(inv.modified_at)],
      inv.completed_at ? ["completed", timeCell(inv.completed_at)] : null,
      ["duration", duration(end - created) + (inv.completed_at ? "" : " so far")],
      ["invoked by", inv.invoked_by_id ? invLink(inv.invoked_by_id, inv.invoked_by_target || inv.invoked_by_id) : inv.invoked_by || "ingress"],
      ["deployment", inv.pinned_deployment_id ? h("a", { class: "mono", href: "#/services" }, inv.pinned_deployment_id) : h("span", { class: "muted" }, "not pinned yet")],
      ["retries", String(inv.retry_count || 0)],
      inv.next_retry_at ? ["next retry", h("time", { title: formatTime(inv.next_retry_at, { ms: true }) }, relative(inv.next_retry_at))] : null,
      inv.scheduled_start_at ? ["starts", timeCell(inv.scheduled_start_at)] : null,
      inv.idempotency_key ? ["idempotency key", h("span", { class: "mono" }, inv.idempotency_key)] : null,
      inv.completion_expires_at ? ["kept until", timeCell(inv.completion_expires_at)] : null,
      inv.completion_result ? ["result", inv.completion_result === "failure" ? h("span", { class: "bad" }, inv.completion_failure || "failure") : "success"] : null,
    ].filter(Boolean);
    const actions = h("div", { class: "actions" }, VERBS.map((verb) => h("button", {
      "data-verb": verb,
      class: verb === "kill" || verb === "purge" ? "danger" : "",
      disabled: !applies(verb, inv.status),
      onclick: async () => {
        if ((verb === "kill" || verb === "purge") && !confirm(`${verb} ${inv.id}?`)) return;
        const outcome = await runVerb(verb, [inv.id]);
        toast(outcome.failed.length ? `${verb} refused: ${outcome.failed[0][1]}` : summary(verb, outcome),
          outcome.failed.length ? "error" : "info");
        await refresh();
      },
    }, verb)));
    return h("div", { class: "inv-header" },
      h("div", { class: "inv-title" },
        h("h1", {}, h("a", { href: `#/services/${encodeURIComponent(inv.target_service_name)}` }, inv.target)),
        h("span", { class: "mono muted id" }, inv.id),
        h("span", { class: "spacer" }), actions),
      h("dl", { class: "facts" }, fields.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v)))));
  }

  function deadlockBox(deadlock) {
    return h("div", { class: "deadlock" },
      h("b", {}, "Deadlock. "), deadlock.description.replace(/^deadlock:\s*/i, ""), h("div", { class: "cycle" },
        deadlock.cycle.map((cid, i) => [i ? " → " : "", cid === id ? h("b", { class: "mono" }, "this") : invLink(cid)]),
        " → ", deadlock.cycle[0] === id ? h("b", {}, "this") : invLink(deadlock.cycle[0])),
      h("div", { class: "muted" }, "Each waits on the next with a request-response call; cancel or kill one of them to break the cycle."));
  }

  /** Why it has not finished: what it waits for, in words, with links. */
  function waitingBox({ inv, rows, holders, statuses }) {
    const reasons = [];
    switch (inv.status) {
      case "pending":
        reasons.push(["queued behind ", holders.length
          ? holders.map((hd, i) => [i ? ", " : "", invLink(hd.id, hd.target), ` (${hd.status})`])
          : "the invocation holding the key", `, which holds ${inv.target_service_name}/${inv.target_service_key}`]);
        break;
      case "scheduled":
        reasons.push(["scheduled to start ", relative(inv.scheduled_start_at), ` (${formatTime(inv.scheduled_start_at)})`]);
        break;
      case "backing-off":
        reasons.push([`attempt ${(inv.retry_count || 0) + 1} failed; the next retry is `,
          inv.next_retry_at ? relative(inv.next_retry_at) : "pending"]);
        break;
      case "paused":
        reasons.push(["paused (retries exhausted or paused by hand): resume it to retry, or cancel or kill it"]);
        break;
      default:
        break;
    }
    if (["suspended", "running", "ready"].includes(inv.status)) {
      for (const r of rows) {
        if (r.kind !== "command" || !r.span || r.span.to !== null) continue;
        if (r.type === "Sleep") reasons.push([`a sleep (#${r.index}) that wakes `, relative(r.span.planned), ` (${formatTime(r.span.planned)})`]);
        else if (r.type === "Call") {
          const s = r.child && statuses[r.child];
          reasons.push([`the call #${r.index} to `, r.child ? invLink(r.child, r.title) : r.title, s ? ` (${s.status})` : ""]);
        } else reasons.push([`${r.type} #${r.index}`, r.title ? ` ${r.title}` : r.name ? ` ${r.name}` : ""]);
      }
      if (!reasons.length && inv.status === "suspended") reasons.push(["a signal: an awakeable, a promise or a cancellation"]);
    }
    if (!reasons.length) return null;
    return h("div", { class: "waiting" }, h("b", {}, inv.status === "pending" || inv.status === "scheduled" || inv.status === "paused" || inv.status === "backing-off" ? "Why it waits: " : "Waiting for: "),
      reasons.map((r, i) => [i ? "; " : "", r]));
  }

  function failureBox(inv) {
    if (!inv.last_failure || inv.status === "completed") return null;
    const [first, ...rest] = inv.last_failure.split("\n");
    const stack = rest.join("\n").trim();
    return h("div", { class: "failure-box" },
      h("div", {}, h("b", {}, "Last failure "), h("span", { class: "mono" }, first)),
      stack ? h("details", { "data-key": "stack", open: true }, h("summary", {}, "stack"), h("pre", {}, stack)) : null);
  }

  function callTree(inv, { kids, statuses }) {
    const node = (cid, label, extra) => {
      const s = statuses[cid];
      return h("li", {}, s ? statusPill(s.status, s.completion_result) : h("span", { class: "pill" }, "gone"), " ",
        invLink(cid, label || s?.target || cid), extra ? h("span", { class: "muted" }, ` ${extra}`) : null);
    };
    return h("section", { class: "tree" }, h("h2", {}, "Call tree"),
      h("ul", {},
        inv.invoked_by_id ? node(inv.invoked_by_id, inv.invoked_by_target, "parent") : h("li", { class: "muted" }, `called from ${inv.invoked_by || "ingress"}`),
        h("li", {}, h("ul", {},
          h("li", { class: "self" }, statusPill(inv.status, inv.completion_result), " ", h("b", {}, inv.target)),
          kids.length ? h("li", {}, h("ul", {}, kids.map((k) => node(k.id, k.target, `${k.type === "OneWayCall" ? "send" : "call"} #${k.index}`)))) : null))));
  }

  function timelineTable(inv, rows, count) {
    if (!rows.length) {
      return h("p", { class: "muted" }, inv.status === "completed"
        ? "The journal is gone (journal retention ended) or was never kept."
        : "No journal yet: the invocation has not started.");
    }
    const t0 = parseTime(inv.created_at) ?? rows[0].at;
    const done = inv.status === "completed";
    let tEnd = parseTime(inv.completed_at) ?? Math.max(Date.now(), rows[rows.length - 1].at);
    for (const r of rows) if (r.span?.planned && !r.span.to) tEnd = Math.max(tEnd, r.span.planned);
    const total = Math.max(1, tEnd - t0);
    const pct = (t) => `${(100 * Math.min(Math.max(t - t0, 0), total)) / total}%`;
    const bar = (r) => {
      const track = h("div", { class: "track" });
      const tick = h("div", { class: "tick", style: { left: pct(r.at) } });
      track.append(tick);
      if (r.span) {
        const end = r.span.to ?? (r.span.planned && !done ? r.span.planned : done ? tEnd : Date.now());
        const left = (100 * (r.span.from - t0)) / total;
        const width = Math.max(0.6, (100 * (end - r.span.from)) / total);
        const open = r.span.to === null;
        track.append(h("div", {
          class: `span ${r.span.kind}${open ? " open" : ""}`,
          style: { left: `${left}%`, width: `${Math.min(width, 100 - left)}%` },
          title: `${r.type}: ${duration(end - r.span.from)}${open ? (r.span.planned ? " (planned)" : " (waiting)") : ""}`,
        }));
      }
      return track;
    };
    const fieldCells = (r) => [
      ...r.fields.map(([label, decoded, textValue], i) => h("div", { class: "field" },
        h("span", { class: "label" }, label), " ",
        decoded ? withKey(payload(decoded), `${r.index}-${i}`) : h("span", { class: label === "failure" ? "bad mono" : "mono" }, textValue))),
      r.span && r.kind === "command" ? h("div", { class: "field" }, h("span", { class: "label" }, r.span.to ? "took" : "waiting"), " ",
        r.span.to ? duration(r.span.to - r.span.from)
          : r.span.planned ? `wakes ${relative(r.span.planned)}` : `${duration(Date.now() - r.span.from)} so far`) : null,
      r.result?.value ? h("div", { class: "field" }, h("span", { class: "label" }, "→"), " ", withKey(payload(r.result.value), `${r.index}-r`)) : null,
      r.result?.failure ? h("div", { class: "field" }, h("span", { class: "label" }, "→"), " ", h("span", { class: "bad mono" }, r.result.failure)) : null,
      r.child ? h("div", { class: "field" }, h("span", { class: "label" }, "invocation"), " ", invLink(r.child)) : null,
    ];
    return h("table", { class: "grid timeline" },
      h("thead", {}, h("tr", {}, h("th", { class: "num" }, "#"), h("th", {}, "time"), h("th", {}, "entry"),
        h("th", {}, "details"), h("th", { class: "bar-col" }, h("div", { class: "scale" }, h("span", {}, "0"), h("span", {}, duration(total)))))),
      h("tbody", {}, rows.map((r) => h("tr", { class: `entry ${r.kind}`, "data-index": r.index },
        h("td", { class: "num muted" }, r.index),
        h("td", { class: "time", title: formatTime(r.at, { ms: true }) }, `+${duration(r.at - t0)}`),
        h("td", { class: "what" }, h("span", { class: `etype ${r.kind}` }, r.type),
          r.name ? h("span", { class: "ename" }, ` ${r.name}`) : null,
          r.title ? h("div", { class: "etitle mono" }, r.title) : null,
          r.completes !== null ? h("div", { class: "muted small" }, `completes #${r.completes}`) : null),
        h("td", { class: "details" }, fieldCells(r)),
        h("td", { class: "bar-col" }, bar(r))))),
      count >= JOURNAL_LIMIT ? h("tfoot", {}, h("tr", {}, h("td", { colspan: 5, class: "muted" }, `showing the first ${JOURNAL_LIMIT} entries`))) : null);
  }

  function withKey(el, key) {
    if (el.tagName === "DETAILS") el.dataset.key = key;
    return el;
  }

  async function refresh() {
    let data;
    try {
      data = await load();
    } catch (err) {
      clear(body, errorBox(err));
      return;
    }
    const running = data.inv && data.inv.status !== "completed";
    const sig = JSON.stringify([data.inv, data.entries, data.statuses, data.deadlock,
      running ? Math.floor(Date.now() / 5000) : 0]);
    if (sig === signature) return;
    signature = sig;
    render(data);
  }

  await refresh();
  return { refresh };
}
