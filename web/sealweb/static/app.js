// sealweb's only script (served from this origin; the CSP forbids inline script).
// It turns WebAuthn's ArrayBuffers into base64url JSON and back; seald checks everything.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf"]').content;

function b64urlToBuf(s) {
  const pad = "=".repeat((4 - (s.length % 4)) % 4);
  const bin = atob((s + pad).replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0)).buffer;
}

function bufToB64url(buf) {
  let bin = "";
  new Uint8Array(buf).forEach((b) => { bin += String.fromCharCode(b); });
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function post(url, body) {
  const reply = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
    body: JSON.stringify(body || {}),
  });
  const data = await reply.json().catch(() => ({ error: reply.statusText }));
  if (!reply.ok) throw new Error(data.error || reply.statusText);
  return data;
}

function requestOptions(o) {
  o.challenge = b64urlToBuf(o.challenge);
  (o.allowCredentials || []).forEach((c) => { c.id = b64urlToBuf(c.id); });
  return o;
}

function creationOptions(o) {
  o.challenge = b64urlToBuf(o.challenge);
  o.user.id = b64urlToBuf(o.user.id);
  (o.excludeCredentials || []).forEach((c) => { c.id = b64urlToBuf(c.id); });
  return o;
}

function assertionJSON(cred) {
  const r = cred.response;
  return {
    id: cred.id,
    rawId: bufToB64url(cred.rawId),
    type: cred.type,
    response: {
      authenticatorData: bufToB64url(r.authenticatorData),
      clientDataJSON: bufToB64url(r.clientDataJSON),
      signature: bufToB64url(r.signature),
      userHandle: r.userHandle ? bufToB64url(r.userHandle) : "",
    },
  };
}

function registrationJSON(cred) {
  return {
    id: cred.id,
    rawId: bufToB64url(cred.rawId),
    type: cred.type,
    response: {
      clientDataJSON: bufToB64url(cred.response.clientDataJSON),
      attestationObject: bufToB64url(cred.response.attestationObject),
      transports: cred.response.getTransports ? cred.response.getTransports() : [],
    },
    clientExtensionResults: cred.getClientExtensionResults(),
  };
}

function say(text, isError) {
  const el = document.getElementById("status");
  if (!el) return;
  el.textContent = text;  // text, never HTML
  el.className = isError ? "error" : "";
}

async function signIn(button) {
  say(button.dataset.waiting);
  try {
    const begun = await post("/api/signin/begin");
    const cred = await navigator.credentials.get({ publicKey: requestOptions(begun.options) });
    const done = await post("/api/signin/finish", { credential: assertionJSON(cred) });
    window.location.assign(done.next);
  } catch (e) { say(String(e.message || e), true); }
}

async function enrol(form) {
  say(form.dataset.waiting);
  const fields = { enrolment_id: form.enrolment_id.value, code: form.code.value, name: form.name.value };
  try {
    const begun = await post("/api/enrol/begin", fields);
    const cred = await navigator.credentials.create({ publicKey: creationOptions(begun.options) });
    await post("/api/enrol/finish", Object.assign({ credential: registrationJSON(cred) }, fields));
    say(form.dataset.done);
  } catch (e) { say(String(e.message || e), true); }
}

async function approve(button) {
  say(button.dataset.waiting);
  const id = encodeURIComponent(button.dataset.request);
  const comment = document.getElementById("comment").value;
  try {
    const begun = await post(`/api/r/${id}/approve/begin`, { comment });
    document.getElementById("challenge").textContent = begun.challenge_sha256;
    const cred = await navigator.credentials.get({ publicKey: requestOptions(begun.options) });
    const done = await post(`/api/r/${id}/approve/finish`, { credential: assertionJSON(cred) });
    say(button.dataset.done);
    document.getElementById("state").textContent = done.state_label;
    button.hidden = true;
  } catch (e) { say(String(e.message || e), true); }
}

function live(container) {
  const source = new EventSource("/events");
  source.addEventListener("change", async () => {
    const reply = await fetch(container.dataset.live, { credentials: "same-origin" });
    if (reply.ok) container.innerHTML = await reply.text();  // server-rendered, escaped
  });
}

// Every page of a document: one image per page, the first two at once, the rest lazily
// (the browser asks for them as they near the screen; sealweb fetches them from seald a
// few pages at a time).
async function previews(box) {
  const base = box.dataset.base;
  const reply = await fetch(base + "pages.json", { credentials: "same-origin" });
  if (!reply.ok) return;
  const { pages } = await reply.json();
  box.dataset.pages = String(pages);
  for (let p = 1; p <= pages; p++) {
    const img = document.createElement("img");
    img.className = "preview";
    img.alt = box.dataset.name + " p" + p;
    img.dataset.page = String(p);
    img.loading = p <= 2 ? "eager" : "lazy";
    img.width = 827;  // A4 at 100 dpi until the picture arrives: lazy images need a size
    img.height = 1169;
    img.addEventListener("load", () => { img.removeAttribute("width"); img.removeAttribute("height"); });
    img.addEventListener("error", () => { img.hidden = true; });
    img.src = base + p + ".png";
    box.appendChild(img);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const signin = document.getElementById("signin");
  if (signin) signin.addEventListener("click", () => signIn(signin));
  const form = document.getElementById("enrol-form");
  if (form) form.addEventListener("submit", (ev) => { ev.preventDefault(); enrol(form); });
  const approveButton = document.getElementById("approve");
  if (approveButton) approveButton.addEventListener("click", () => approve(approveButton));
  const rows = document.getElementById("rows");
  if (rows && rows.dataset.live) live(rows);
  document.querySelectorAll("div.previews[data-base]").forEach(previews);
});
