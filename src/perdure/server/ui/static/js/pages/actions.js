// The invocation verbs (PATCH /invocations/{id}/{verb}) on one or many ids, and which apply to
// which status.

import { api } from "../api.js";

export const VERBS = ["cancel", "kill", "pause", "resume", "purge"];

/** Whether a verb can apply to an invocation in this status (the server has the last word). */
export function applies(verb, status) {
  switch (verb) {
    case "cancel":
    case "kill":
      return status !== "completed";
    case "pause":
      return ["ready", "running", "backing-off", "suspended"].includes(status);
    case "resume":
      return ["paused", "suspended", "backing-off"].includes(status);
    case "purge":
      return status === "completed";
    default:
      return false;
  }
}

/** Run ``verb`` on each id (a few at a time); {done: [...ids], failed: [[id, message]...]}. */
export async function runVerb(verb, ids) {
  const done = [];
  const failed = [];
  const queue = [...ids];
  async function worker() {
    while (queue.length) {
      const id = queue.shift();
      try {
        await api("PATCH", `/invocations/${encodeURIComponent(id)}/${verb}`);
        done.push(id);
      } catch (err) {
        failed.push([id, err.message]);
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(8, queue.length) }, worker));
  return { done, failed };
}

export function summary(verb, { done, failed }) {
  const parts = [];
  if (done.length) parts.push(`${verb}: ${done.length} done`);
  if (failed.length) parts.push(`${failed.length} refused (${failed[0][1]}${failed.length > 1 ? ", …" : ""})`);
  return parts.join("; ");
}
