/* Sign-in: POST /api/auth/login, keep the bearer token in sessionStorage, go where the user was headed. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, $, describe } = window.LM;
  const form = $("login-form");
  const error = $("login-error");

  // Where the dashboard lives: "/" and these pages (never the API, the docs or another origin).
  const DASHBOARD = [/^\/$/, /^\/clientes(\/\d+)?$/, /^\/admin$/];

  function nextUrl() {
    const raw = new URLSearchParams(location.search).get("next");
    if (!raw || !raw.startsWith("/")) return "/";
    // Resolve it as the browser will: "/\\evil", "/\t/evil" and the like turn into another origin here.
    let url;
    try {
      url = new URL(raw, location.origin);
    } catch (_) {
      return "/";
    }
    if (url.origin !== location.origin) return "/";
    if (!DASHBOARD.some((re) => re.test(url.pathname))) return "/";
    return url.pathname + url.search + url.hash;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const data = await api("POST", "/api/auth/login", {
        username: $("username").value.trim(),
        password: $("password").value,
      });
      window.LM.setToken(data.access_token);
      location.replace(nextUrl());
    } catch (err) {
      error.textContent = err.code === "INVALID_CREDENTIALS"
        ? "Wrong username or password." : describe(err);
      error.hidden = false;
      $("password").select();
    } finally {
      button.disabled = false;
    }
  });
});
