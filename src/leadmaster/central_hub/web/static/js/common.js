/* Shared helpers for every dashboard page: token, API calls, small DOM builder, polling, nav. */
"use strict";

window.LM = (() => {
  const TOKEN_KEY = "leadmaster.token";

  function token() { return sessionStorage.getItem(TOKEN_KEY); }
  function setToken(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
  }

  function toLogin() {
    const next = location.pathname + location.search;
    location.replace("/login" + (next && next !== "/" ? "?next=" + encodeURIComponent(next) : ""));
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || "Request failed (HTTP " + status + ")");
      this.status = status;
      this.code = (body && body.code) || "HTTP_" + status;
      this.body = body || {};
    }
  }

  /* Calls the hub's JSON API (the contract); a 401 anywhere but at login means the token expired. */
  async function api(method, path, body, extraHeaders) {
    const headers = { Accept: "application/json", ...(extraHeaders || {}) };
    const t = token();
    if (t) headers.Authorization = "Bearer " + t;
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, { code: "NETWORK_ERROR", message: "Could not reach the hub. Is it running?" });
    }
    let data = null;
    if (resp.status !== 204) {
      try { data = await resp.json(); } catch (err) { data = null; }
    }
    if (resp.status === 401 && path !== "/api/auth/login") {
      setToken(null);
      toLogin();
    }
    if (!resp.ok) throw new ApiError(resp.status, data);
    return data;
  }

  /* Builds elements from data without innerHTML, so names and log lines can never become markup. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const $ = (id) => document.getElementById(id);

  function setBadge(node, status) {
    node.textContent = status || "UNKNOWN";
    node.dataset.status = status || "";
  }

  /* Plain-language headline per hub error code (CONTRACT §3.4); the hub's own sentence follows as detail. */
  const HEADLINES = {
    SERVICE_UNAVAILABLE: "WhatsApp session not ready",
    VALIDATION_ERROR: "The request was refused as invalid",
    WHATSAPP_ERROR: "WhatsApp failed the request",
    SESSION_MANAGER_UNREACHABLE: "The session-manager is not reachable",
    SESSION_MANAGER_TIMEOUT: "The session-manager did not answer in time",
    SESSION_MANAGER_AUTH_FAILED: "The hub's and the session-manager's API keys do not match",
    SESSION_MANAGER_BAD_RESPONSE: "The session-manager gave an unexpected answer",
    UNAUTHORIZED: "Please sign in again",
    INVALID_CREDENTIALS: "Wrong username or password",
    FORBIDDEN: "Not allowed for your account",
    NOT_FOUND: "Not found",
    CONFLICT: "That already exists",
    NOT_SUPPORTED: "Not supported by this setup",
    NETWORK_ERROR: "Could not reach the hub",
    RATE_LIMITED: "Too many requests: wait and try again",
  };
  // The session-manager's own code, kept by the hub as upstream_code, is more precise when present.
  const UPSTREAM_HEADLINES = {
    INVALID_TO: "Not a phone number: use 7 to 15 digits, optionally with a leading +",
    INVALID_MESSAGE: "The message is empty or too long",
    ALREADY_PAIRED: "This cliente's WhatsApp is already linked",
    NO_QR_TO_SCAN: "There is no QR code to scan right now",
    SEND_FAILED: "WhatsApp did not accept the message",
    INVALID_PHONES: "Not a list of 1 to 50 phone numbers (7 to 15 digits each, optionally with a leading +)",
    MESSAGE_NOT_FOUND: "No such message was sent from this WhatsApp (or it is older than 30 days)",
  };

  function headline(err) {
    if (!(err instanceof ApiError)) return String(err && err.message ? err.message : err);
    return UPSTREAM_HEADLINES[err.body.upstream_code] || HEADLINES[err.code] || err.message;
  }

  function codes(err) {
    const parts = [err.code];
    if (err.body.upstream_code) parts.push(err.body.upstream_code);
    if (err.body.status) parts.push("session " + err.body.status);
    return parts.join(", ");
  }

  /* One line for toasts: the headline and the codes, e.g. "WhatsApp session not ready (SERVICE_UNAVAILABLE)". */
  function describe(err) {
    if (!(err instanceof ApiError)) return headline(err);
    return headline(err) + " (" + codes(err) + ")";
  }

  /* An outcome box: headline and codes, then the hub's full sentence in small print. */
  function explain(node, prefix, err) {
    const detail = err instanceof ApiError && err.message !== headline(err) ? err.message : "";
    node.replaceChildren(prefix + describe(err), detail ? el("small", { class: "detail", text: detail }) : "");
    node.classList.add("is-error");
    node.hidden = false;
  }

  function show(node, text, isError) {
    node.textContent = text;
    node.classList.toggle("is-error", Boolean(isError));
    node.hidden = false;
  }

  let toastTimer = null;
  function toast(text, isError) {
    const node = $("toast");
    node.textContent = text;
    node.classList.toggle("is-error", Boolean(isError));
    node.classList.add("show");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => node.classList.remove("show"), 3500);
  }

  /* Runs fn now and then every ms (a number or a function returning one); waits for each run so slow
     answers never pile up. A hidden tab skips its runs: every status read is a logged hub interaction. */
  function poll(fn, ms) {
    let stopped = false;
    let running = false;
    let timer = null;
    async function tick() {
      if (stopped || running) return;  // a run in flight reschedules itself
      running = true;
      clearTimeout(timer);
      try {
        if (!document.hidden) await fn();
      } catch (err) {
        /* the page shows its own errors; keep polling */
      } finally {
        running = false;
      }
      if (!stopped) timer = setTimeout(tick, typeof ms === "function" ? ms() : ms);
    }
    tick();
    document.addEventListener("visibilitychange", () => { if (!document.hidden) tick(); });
    return () => { stopped = true; clearTimeout(timer); };
  }

  /* Disables a button while its action runs, so a double click sends one request. */
  async function busy(button, fn) {
    button.disabled = true;
    try { return await fn(); } finally { button.disabled = false; }
  }

  /* Every page but login: needs a token, then fills the nav from GET /api/me. */
  async function requireLogin() {
    if (!token()) { toLogin(); return new Promise(() => {}); }
    const me = await api("GET", "/api/me");
    $("whoami").textContent = me.username + " · " + me.role;
    $("nav-admin").hidden = me.role !== "admin";
    $("nav").hidden = false;
    return me;
  }

  /* Today's entries show the time only: the log is read to follow what just happened. */
  function formatTime(value) {
    if (!value) return "";
    const d = new Date(value);
    if (isNaN(d)) return String(value);
    return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const out = $("sign-out");
    if (out) out.addEventListener("click", () => { setToken(null); location.replace("/login"); });
  });

  return { api, ApiError, el, $, setBadge, describe, explain, show, toast, poll, busy, requireLogin, setToken, token, formatTime };
})();
