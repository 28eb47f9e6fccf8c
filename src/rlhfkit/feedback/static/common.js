// Shared by the pages: a JSON fetch that sends the CSRF token, and plain-text DOM helpers.
// Untrusted text (model outputs, rationales, names) only ever goes into textContent.
"use strict";
const CSRF = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

async function api(method, url, body) {
  const opts = { method, headers: { "X-CSRF-Token": CSRF }, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(url, opts);
  let data = null;
  if (res.status !== 204) {
    try { data = await res.json(); } catch (e) { data = { error: res.statusText }; }
  }
  return { status: res.status, ok: res.ok, data };
}

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function setStatus(text, isError) {
  const node = document.getElementById("status");
  if (!node) return;
  node.textContent = text;
  node.className = isError ? "error" : "";
}

function logoutButton() {
  const button = document.getElementById("logout");
  if (button) button.addEventListener("click", async () => { await api("POST", "/api/logout", {}); location.href = "/login"; });
}
