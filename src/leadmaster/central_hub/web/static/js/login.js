/* Sign-in: POST /api/auth/login, keep the bearer token in sessionStorage, go where the user was headed. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, $, describe } = window.LM;
  const form = $("login-form");
  const error = $("login-error");

  function nextUrl() {
    const next = new URLSearchParams(location.search).get("next") || "/";
    // Only same-site paths: an open redirect after login would help phishing.
    return next.startsWith("/") && !next.startsWith("//") ? next : "/";
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
