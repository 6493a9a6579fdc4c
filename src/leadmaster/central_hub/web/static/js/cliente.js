/* One cliente: live status, QR that follows rotation, pairing code, test send, interaction log. */
"use strict";

document.addEventListener("DOMContentLoaded", async () => {
  const { api, el, $, setBadge, describe, explain, show, toast, poll, busy, formatTime } = window.LM;
  const id = Number(document.body.dataset.clienteId);
  const base = `/api/whatsapp/${id}`;
  // Polling reads are logged by the hub like any call; hidden by default so sends and links stand out.
  const QUIET_OPERATIONS = new Set(["status", "qr", "account", "message", "messages"]);
  const HINTS = {
    DISCONNECTED: "Not connected. Press Connect to start linking this cliente's WhatsApp account.",
    INIT: "Starting the WhatsApp session…",
    QR_REQUIRED: "Scan this code with WhatsApp on the cliente's phone, or link with a phone number below.",
    AUTHENTICATED: "Scanned. Finishing the link…",
    READY: "Linked and ready to send.",
    ERROR: "The session stopped with an error. Press Connect to start again.",
  };

  // The session-manager's `reason` codes (contract Reason enum) in words; the code itself is shown too.
  const REASONS = {
    QR_TIMEOUT: "Nobody scanned the QR code in time.",
    LOGGED_OUT: "The phone unlinked this device.",
    TEMPORARY_BAN: "WhatsApp temporarily banned this number.",
    STREAM_REPLACED: "Another session took over this WhatsApp account.",
    CONNECT_FAILED: "Could not connect to WhatsApp. Is the network up?",
    ENGINE_CRASHED: "The WhatsApp engine crashed.",
    CONNECTION_LOST: "The connection to WhatsApp dropped; it reconnects by itself.",
    DISCONNECT_REQUESTED: "Disconnected on request; Connect resumes without a new QR code.",
    LOGOUT_REQUESTED: "Unlinked on request; linking again needs a new QR code.",
    SHUTDOWN: "The session-manager was stopped.",
  };
  let sandbox = false;
  let status = "";
  let lastRaw = null;
  let accountShown = false;
  let stopStatus = () => {};

  function fail(text) {
    show($("cliente-error"), text, true);
    $("cliente-body").hidden = true;
  }

  try {
    await window.LM.requireLogin();
    const clientes = await api("GET", "/api/clientes");
    const cliente = clientes.find((c) => c.id === id);
    if (!cliente) {
      fail(`Cliente #${id} does not exist or you do not have access to it.`);
      return;
    }
    $("cliente-name").textContent = cliente.name;
    document.title = `${cliente.name} · LeadMaster WhatsApp`;
    $("cliente-instance").textContent = cliente.instance_id;
  } catch (err) {
    fail(err.status === 403 ? `You do not have access to cliente #${id}.` : describe(err));
    return;
  }
  $("cliente-body").hidden = false;

  try {
    const info = await api("GET", "/dashboard/api/info");
    sandbox = Boolean(info.sandbox);
  } catch (err) { sandbox = false; }

  function render(newStatus, reason) {
    // A "not ready" result from before the link would read as current once READY: drop it.
    if (newStatus === "READY" && status && status !== "READY" && $("send-outcome").classList.contains("is-error")) {
      $("send-outcome").hidden = true;
    }
    status = newStatus;
    setBadge($("status-badge"), status);
    $("link-hint").textContent = HINTS[status] || "";
    const why = $("status-reason");
    why.hidden = !reason || status === "READY";
    why.textContent = reason ? `${REASONS[reason] || "Reason:"} (${reason})` : "";
    const linking = ["INIT", "QR_REQUIRED", "AUTHENTICATED"].includes(status);
    $("btn-connect").disabled = status === "READY" || linking;
    $("btn-disconnect").disabled = status === "DISCONNECTED";
    $("btn-simulate").hidden = !(sandbox && status === "QR_REQUIRED");
    // The session-manager issues pairing codes only while it waits for a link (CONTRACT §2.4).
    $("pair-section").hidden = status !== "QR_REQUIRED";
    if (status !== "QR_REQUIRED") hideQr();
    if (status !== "READY") { $("account").hidden = true; accountShown = false; }
  }

  function hideQr() {
    $("qr-box").hidden = true;
    $("qr-img").removeAttribute("src");
    lastRaw = null;
  }

  async function refreshQr() {
    const data = await api("GET", `${base}/qr`);
    if (data.status !== "QR_AVAILABLE") { hideQr(); return; }
    // Swap the image only when the code rotated: no flicker while the user is aiming the phone.
    if (data.raw !== lastRaw) {
      $("qr-img").src = data.qr;
      $("qr-img").dataset.raw = data.raw;
      lastRaw = data.raw;
    }
    $("qr-box").hidden = false;
  }

  async function refreshAccount() {
    try {
      const acc = await api("GET", `${base}/account`);
      const who = [acc.push_name, acc.phone ? "+" + acc.phone : acc.jid].filter(Boolean).join(" · ");
      $("account").replaceChildren(el("strong", { text: "✓ Linked: " }), who);
      $("account").hidden = false;
      accountShown = true;
    } catch (err) { /* the status badge already says READY; the account line is a nicety */ }
  }

  async function refresh() {
    try {
      const data = await api("GET", `${base}/status`);
      render(data.status, data.reason);
      if (status === "QR_REQUIRED") await refreshQr();
      if (status === "READY" && !accountShown) await refreshAccount();
    } catch (err) {
      if (err.status === 403 || err.status === 404) { fail(describe(err)); stopStatus(); return; }
      setBadge($("status-badge"), err.code === "SESSION_MANAGER_UNREACHABLE" ? "UNREACHABLE" : "ERROR");
      $("link-hint").textContent = describe(err);
    }
  }

  async function action(button, path, body, done) {
    await busy(button, async () => {
      try {
        const data = await api("POST", path, body);
        if (done) done(data);
      } catch (err) {
        toast(describe(err), true);
      }
    });
    // After busy() re-enabled the button, so render() has the last word on which buttons apply.
    await refresh();
    refreshLog();
  }

  $("btn-connect").addEventListener("click", (e) => action(e.currentTarget, `${base}/connect`));
  $("btn-disconnect").addEventListener("click", (e) => action(e.currentTarget, `${base}/disconnect`));
  $("btn-logout").addEventListener("click", (e) => {
    if (!confirm("Unlink this WhatsApp account? Linking again needs a new QR scan.")) return;
    action(e.currentTarget, `${base}/logout`);
  });
  $("btn-simulate").addEventListener("click", (e) =>
    action(e.currentTarget, `/dashboard/api/clientes/${id}/simulate-scan`, undefined,
      () => toast("Sandbox phone scanned the code.")));

  $("pair-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const out = $("pair-code");
    const button = event.currentTarget.querySelector("button");
    await busy(button, async () => {
      try {
        const data = await api("POST", `${base}/pair-code`, { phone: $("pair-phone").value.trim() });
        out.replaceChildren(data.code);
        out.classList.remove("form-error");
        $("pair-help").hidden = false;
      } catch (err) {
        out.replaceChildren(describe(err));
        out.classList.add("form-error");
        $("pair-help").hidden = true;
        if (err.body && err.body.message) out.append(el("small", { class: "detail", text: err.body.message }));
      }
      out.hidden = false;
    });
  });

  function idempotencyKey() {
    return crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2);
  }

  $("send-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const out = $("send-outcome");
    const button = event.currentTarget.querySelector("button");
    await busy(button, async () => {
      try {
        const data = await api("POST", `${base}/send`,
          { to: $("send-to").value.trim(), message: $("send-text").value },
          { "Idempotency-Key": idempotencyKey() });
        const d = data.data || {};
        show(out, `✓ ${data.message || "Message sent"} to ${d.to || d.jid} · id ${d.message_id}`, false);
        window.LM.delivery.track(d);
      } catch (err) {
        explain(out, "✗ Not sent: ", err);
      }
      refreshLog();
    });
  });

  function logRow(item) {
    const outcome = item.outcome || item.code || "";
    const ok = /^(OK|SUCCESS)$/i.test(outcome) || (item.upstream_status >= 200 && item.upstream_status < 300);
    const upstream = item.upstream_status ? ` (${item.upstream_status})` : "";
    return el("tr", {},
      el("td", { text: formatTime(item.time || item.created_at || item.timestamp) }),
      el("td", {}, el("code", { text: item.operation || `${item.method || ""} ${item.path || ""}` })),
      el("td", { class: ok ? "ok" : "bad", text: (outcome || "—") + upstream }),
      el("td", { text: item.username || item.user || "" }),
      el("td", { text: item.duration_ms === undefined ? "" : String(Math.round(item.duration_ms)) }));
  }

  async function refreshLog() {
    try {
      const data = await api("GET", `${base}/interactions?limit=100`);
      const all = $("log-all").checked;
      const items = (data.items || []).filter((i) => all || !QUIET_OPERATIONS.has(i.operation));
      $("log-body").replaceChildren(...items.slice(0, 50).map(logRow));
      $("log-empty").textContent = (data.items || []).length
        ? "Only status checks so far: tick “Show status checks” to see them." : "No interactions yet.";
      $("log-empty").hidden = items.length > 0;
    } catch (err) {
      $("log-empty").textContent = `Could not load the log: ${describe(err)}`;
      $("log-empty").hidden = false;
    }
  }
  $("log-all").addEventListener("change", refreshLog);

  // Fast while linking (QR codes rotate), slow once linked or stopped.
  stopStatus = poll(refresh, () => (["INIT", "QR_REQUIRED", "AUTHENTICATED"].includes(status) ? 2000 : 5000));
  poll(refreshLog, 3000);
});
