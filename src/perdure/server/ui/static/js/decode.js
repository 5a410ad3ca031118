// Payloads as people read them: bytes (base64 from the journal, hex from /query) decoded as UTF-8,
// shown as JSON when they are JSON. Also the state version hash the admin API checks on edits.

import { h } from "./dom.js";

export function base64Bytes(b64) {
  const bin = atob(b64.replaceAll("-", "+").replaceAll("_", "/"));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function hexBytes(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** {kind: "json"|"text"|"bytes"|"empty", value, text} of some bytes. */
export function decodeBytes(bytes) {
  if (!bytes || bytes.length === 0) return { kind: "empty", text: "" };
  let text;
  try {
    text = utf8.decode(bytes);
  } catch {
    const hex = Array.from(bytes.slice(0, 256), (b) => b.toString(16).padStart(2, "0")).join(" ");
    return { kind: "bytes", text: `${bytes.length} bytes: ${hex}${bytes.length > 256 ? " …" : ""}` };
  }
  try {
    const value = JSON.parse(text);
    return { kind: "json", value, text: JSON.stringify(value) };
  } catch {
    return { kind: "text", text };
  }
}

/** A decoded payload as an element: compact JSON on one line, expandable when long. */
export function payload(decoded, { open = false } = {}) {
  if (!decoded || decoded.kind === "empty") return h("span", { class: "muted" }, "(empty)");
  if (decoded.kind === "json") {
    const compact = decoded.text;
    if (compact.length <= 80) return h("code", { class: "json" }, compact);
    return h("details", { class: "payload", open },
      h("summary", {}, h("code", { class: "json" }, compact.length > 80 ? `${compact.slice(0, 79)}…` : compact)),
      h("pre", { class: "json" }, JSON.stringify(decoded.value, null, 2)));
  }
  const cls = decoded.kind === "bytes" ? "bytes" : "text";
  if (decoded.text.length <= 80 && !decoded.text.includes("\n")) return h("code", { class: cls }, decoded.text);
  return h("details", { class: "payload", open },
    h("summary", {}, h("code", { class: cls }, `${decoded.text.split("\n")[0].slice(0, 79)}…`)),
    h("pre", {}, decoded.text));
}

// -- state version: SHA-256 over the key-sorted pairs (index u64 BE, 0x01, key, 0x02, value,
// 0x03), base64url without padding. WebCrypto exists only on secure origins (localhost, https),
// so a small SHA-256 covers plain http on another host.

function compareBytes(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

export async function stateVersion(pairs) {
  const sorted = [...pairs].sort((x, y) => compareBytes(x[0], y[0]) || compareBytes(x[1], y[1]));
  const parts = [];
  sorted.forEach(([key, value], index) => {
    const head = new Uint8Array(9);
    new DataView(head.buffer).setBigUint64(0, BigInt(index));
    head[8] = 1;
    parts.push(head, key, Uint8Array.of(2), value, Uint8Array.of(3));
  });
  const total = parts.reduce((n, p) => n + p.length, 0);
  const data = new Uint8Array(total);
  let at = 0;
  for (const p of parts) { data.set(p, at); at += p.length; }
  const digest = globalThis.crypto?.subtle
    ? new Uint8Array(await crypto.subtle.digest("SHA-256", data))
    : sha256(data);
  let bin = "";
  for (const b of digest) bin += String.fromCharCode(b);
  return btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

export function sha256(data) {
  const bits = data.length * 8;
  const padded = new Uint8Array(((data.length + 9 + 63) >> 6) << 6);
  padded.set(data);
  padded[data.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(bits / 2 ** 32));
  view.setUint32(padded.length - 4, bits >>> 0);
  const hv = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(off + 4 * i);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    let [a, b, c, d, e, f, g, hh] = hv;
    for (let i = 0; i < 64; i++) {
      const t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
      const t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    hv[0] += a; hv[1] += b; hv[2] += c; hv[3] += d; hv[4] += e; hv[5] += f; hv[6] += g; hv[7] += hh;
  }
  const out = new Uint8Array(32);
  const ov = new DataView(out.buffer);
  hv.forEach((x, i) => ov.setUint32(4 * i, x));
  return out;
}
