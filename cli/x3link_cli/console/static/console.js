// x3link console: reads and steers the pairings through the console's /api/..., which signs each call.
// Every value the API returns is put in the page as text (textContent), never as HTML.
"use strict";

const TOKEN_KEY = "x3link-console-token";
const POLL_MS = 5000;
const MAX_PAGES = 50;
let selectedTenant = null;
let polling = false;

function takeToken() {
  // The address `x3link console` printed holds the token in its fragment: kept for this tab, then
  // taken out of the address bar, so it is neither shared with a copied URL nor shown.
  const fromAddress = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromAddress) {
    sessionStorage.setItem(TOKEN_KEY, fromAddress);
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

const token = takeToken();

class ApiError extends Error {
  constructor(status, error, message) {
    super(message);
    this.status = status;
    this.error = error;
  }
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json", "X-Console-Token": token || "" };
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch("/api" + path, init);
  } catch (failure) {
    throw new ApiError(0, "console_unreachable", "The console is not running any more: start `x3link console` again.");
  }
  const text = await response.text();
  let answer = null;
  if (text) {
    try { answer = JSON.parse(text); } catch (failure) { answer = null; }
  }
  if (!response.ok) {
    const message = answer && typeof answer.message === "string" ? answer.message : `HTTP ${response.status}`;
    throw new ApiError(response.status, answer && answer.error, message);
  }
  return answer;
}

function segment(value) {
  return encodeURIComponent(value);
}

function query(params) {
  const kept = Object.entries(params).filter(([, value]) => value !== "" && value !== null && value !== undefined);
  return kept.length ? "?" + new URLSearchParams(kept).toString() : "";
}

async function everyPage(path, key, params) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < MAX_PAGES; page++) {
    const answer = await api("GET", path + query({ ...params, cursor }));
    items.push(...(answer[key] || []));
    if (!answer.cursor || answer.cursor === cursor) break;
    cursor = answer.cursor;
  }
  return items;
}

// --- what the page shows ----------------------------------------------------------------------------

function text(value) {
  if (value === null || value === undefined || value === "" || (Array.isArray(value) && value.length === 0)) return "-";
  if (Array.isArray(value)) return value.map(text).join(", ");
  if (typeof value === "object") {
    if ("at" in value && "status" in value && "message" in value) return `${value.at}: Sage answered ${value.status}, ${value.message}`;
    return JSON.stringify(value);
  }
  return String(value);
}

function cell(row, value, className) {
  const td = document.createElement("td");
  td.textContent = text(value);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function statusCell(row, status) {
  const td = document.createElement("td");
  const badge = document.createElement("span");
  badge.className = "status status-" + String(status).replace(/[^a-z]/g, "");
  badge.textContent = text(status);
  td.appendChild(badge);
  row.appendChild(td);
}

function button(label, name, action) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = label;
  element.setAttribute("aria-label", name);
  element.addEventListener("click", action);
  return element;
}

function notice(message, isError) {
  const element = document.getElementById("notice");
  element.textContent = message;
  element.className = isError ? "error" : "";
  element.hidden = false;
}

function fill(rowsId, emptyId, items, build) {
  const body = document.getElementById(rowsId);
  body.replaceChildren(...items.map(build));
  document.getElementById(emptyId).hidden = items.length > 0;
}

function pairingRow(pairing) {
  const row = document.createElement("tr");
  row.dataset.tenant = pairing.tenant;
  cell(row, pairing.tenant, "tenant");
  cell(row, pairing.customer);
  statusCell(row, pairing.status);
  cell(row, pairing.folders);
  cell(row, pairing.refreshed_at);
  cell(row, pairing.next_attempt_at);
  cell(row, pairing.last_refusal);
  const actions = cell(row, "", "actions");
  actions.textContent = "";
  actions.append(
    button("Activity", `Activity of ${pairing.tenant}`, () => showActivity(pairing.tenant)),
    button("Retry", `Retry ${pairing.tenant}`, () => retry(pairing.tenant)),
    button("Delete", `Delete ${pairing.tenant}`, () => remove(pairing.tenant)),
  );
  return row;
}

function linkRow(link) {
  const row = document.createElement("tr");
  row.dataset.link = link.id;
  row.dataset.tenant = link.tenant;
  cell(row, String(link.id).slice(0, 12), "link-id").title = link.id;
  cell(row, link.tenant);
  cell(row, link.customer);
  statusCell(row, link.status);
  cell(row, link.created_at);
  cell(row, link.expires_at);
  const actions = cell(row, "", "actions");
  actions.textContent = "";
  if (link.status === "pending") {
    actions.append(button("Revoke", `Revoke the link of ${link.tenant}`, () => revoke(link)));
  }
  return row;
}

function activityRow(entry) {
  const row = document.createElement("tr");
  cell(row, entry.at);
  cell(row, entry.type, "type");
  cell(row, entry.reason || entry.outcome);
  const rest = Object.fromEntries(Object.entries(entry).filter(([key]) => !["at", "type", "reason", "outcome"].includes(key)));
  cell(row, Object.keys(rest).length ? rest : null);
  return row;
}

function runRow(run) {
  const row = document.createElement("tr");
  row.dataset.run = run.id;
  const first = cell(row, "");
  first.textContent = "";
  first.append(button(run.id, `Run ${run.id}`, () => showRun(run.id)));
  for (const key of ["started_at", "queued", "refreshed", "suspended", "expired", "failed", "pending"]) cell(row, run[key]);
  return row;
}

// --- loading ----------------------------------------------------------------------------------------

// A poll and an action's reload may overlap: only the latest load of each list is shown.
const latest = {};

async function fresh(key, load) {
  const mine = (latest[key] = (latest[key] || 0) + 1);
  const value = await load();
  return latest[key] === mine ? value : null;
}

async function loadPairings() {
  const status = document.getElementById("pairing-status").value;
  const pairings = await fresh("pairings", () => everyPage("/tenants", "tenants", { status, limit: 100 }));
  if (pairings) fill("pairings-rows", "pairings-empty", pairings, pairingRow);
}

async function loadLinks() {
  const status = document.getElementById("link-status").value;
  const links = await fresh("links", () => everyPage("/pairings", "pairings", { status, limit: 100 }));
  if (links) fill("links-rows", "links-empty", links, linkRow);
}

async function loadActivity() {
  if (selectedTenant === null) return;
  const tenant = selectedTenant;
  const answer = await fresh("activity", () => api("GET", `/tenants/${segment(tenant)}/activity?limit=50`));
  if (!answer || tenant !== selectedTenant) return;
  const entries = answer.activity || [];
  document.getElementById("activity-title").textContent = `Activity of ${tenant}`;
  document.getElementById("activity-table").hidden = entries.length === 0;
  const empty = document.getElementById("activity-empty");
  empty.textContent = `No activity for ${tenant} yet (entries come within seconds, and are kept 30 days).`;
  fill("activity-rows", "activity-empty", entries, activityRow);
}

async function loadRuns() {
  const answer = await fresh("runs", () => api("GET", "/keep-alive/runs?limit=20"));
  if (answer) fill("runs-rows", "runs-empty", answer.runs || [], runRow);
}

async function loadAll() {
  try {
    await Promise.all([loadPairings(), loadLinks(), loadActivity(), loadRuns()]);
    document.body.dataset.loaded = String(Date.now());
  } catch (failure) {
    notice(failure.message, true);
  }
}

async function poll() {
  if (polling || document.visibilityState !== "visible") return;
  polling = true;
  try { await loadAll(); } finally { polling = false; }
}

// --- acting -----------------------------------------------------------------------------------------

async function act(work, done) {
  try {
    const said = await work();
    notice(done(said), false);
  } catch (failure) {
    notice(failure.message, true);
  }
  await loadAll();
}

function showActivity(tenant) {
  selectedTenant = tenant;
  loadActivity().catch((failure) => notice(failure.message, true));
}

function retry(tenant) {
  return act(
    () => api("POST", `/tenants/${segment(tenant)}/refresh`),
    (pairing) => `Refreshed ${tenant}: ${text(pairing && pairing.status)}.`,
  );
}

function remove(tenant) {
  if (!window.confirm(`Forget the pairing of ${tenant} and its tokens?`)) return Promise.resolve();
  return act(
    () => api("DELETE", `/tenants/${segment(tenant)}`),
    () => `Deleted the pairing of ${tenant}.`,
  );
}

function revoke(link) {
  if (!window.confirm(`Revoke the pairing link of ${link.tenant}? It will never open.`)) return Promise.resolve();
  return act(
    () => api("DELETE", `/pairings/${segment(link.id)}`),
    () => `Revoked the pairing link of ${link.tenant}: it no longer opens.`,
  );
}

async function showRun(id) {
  try {
    const run = await api("GET", `/keep-alive/runs/${segment(id)}`);
    document.getElementById("run-detail-title").textContent =
      `Run ${run.id}: ${text(run.refreshed)} refreshed, ${text(run.failed)} failed`;
    const failures = (run.failures || []).map((failure) => {
      const item = document.createElement("li");
      item.textContent = `${text(failure.tenant)}: ${text(failure.error)}`;
      return item;
    });
    document.getElementById("run-failures").replaceChildren(...failures);
    document.getElementById("run-detail").hidden = false;
  } catch (failure) {
    notice(failure.message, true);
  }
}

function createLink(event) {
  event.preventDefault();
  const form = event.target;
  const body = { tenant: form.tenant.value.trim(), customer: form.customer.value.trim() };
  if (form.scope.value.trim()) body.scope = form.scope.value.trim();
  if (form.replace.checked) body.replace = true;
  return act(
    async () => {
      const answer = await api("POST", "/pairings", body);
      const link = document.getElementById("link-url");
      // Only an http(s) address becomes a link: a `javascript:` one would run in this page.
      const safe = /^https?:\/\//i.test(String(answer.pairing_url));
      link.textContent = text(answer.pairing_url);
      if (safe) link.href = answer.pairing_url; else link.removeAttribute("href");
      document.getElementById("link-expires").textContent = text(answer.expires_at);
      document.getElementById("link-result").hidden = false;
      return answer;
    },
    (answer) => `Created a pairing link for ${answer.tenant}.`,
  );
}

document.addEventListener("DOMContentLoaded", () => {
  if (!token) {
    notice("This page has no console token: open the address `x3link console` printed.", true);
    return;
  }
  document.getElementById("reload").addEventListener("click", () => loadAll());
  document.getElementById("pairing-status").addEventListener("change", () => loadPairings().catch((f) => notice(f.message, true)));
  document.getElementById("link-status").addEventListener("change", () => loadLinks().catch((f) => notice(f.message, true)));
  document.getElementById("link-form").addEventListener("submit", createLink);
  loadAll();
  setInterval(poll, POLL_MS);
});
