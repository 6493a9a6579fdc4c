/* Cliente page, delivery truth (CONTRACT §5): live ticks of sent messages, and the number check. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, el, $, explain, show, poll, busy, formatTime } = window.LM;
  const base = `/api/whatsapp/${Number(document.body.dataset.clienteId)}`;
  const TICKS = { SENT: "✓", DELIVERED: "✓✓", READ: "✓✓", FAILED: "✗" };
  const WORDS = { SENT: "Sent", DELIVERED: "Delivered", READ: "Read", FAILED: "Failed" };
  const SHOWN = 20;
  const messages = new Map();  // message_id -> latest status row
  let cursor = null;  // updated_at of the last change read: the next poll asks only for later ones
  let tracked = null;  // the message sent from this page's test card
  let started = false;

  function ticks(row) {
    const times = [["sent", row.sent_at], ["delivered", row.delivered_at], ["read", row.read_at]]
      .filter(([, t]) => t).map(([w, t]) => `${w} ${formatTime(t)}`).join(", ");
    return el("span", { class: "ticks", dataset: { status: row.status }, title: times,
      "aria-label": WORDS[row.status] || row.status },
    TICKS[row.status] || "?", el("span", { class: "tick-label", text: WORDS[row.status] || row.status }));
  }

  function render() {
    const rows = [...messages.values()].sort((a, b) => (a.sent_at < b.sent_at ? 1 : -1)).slice(0, SHOWN);
    $("messages-body").replaceChildren(...rows.map((m) => el("tr", { dataset: { messageId: m.message_id } },
      el("td", { text: formatTime(m.sent_at) }),
      el("td", { text: m.to }),
      el("td", {}, ticks(m)),
      el("td", {}, el("code", { text: m.message_id })))));
    $("messages-empty").hidden = rows.length > 0;
    const mine = tracked && messages.get(tracked);
    if (mine) {
      $("send-ticks").replaceChildren(ticks(mine));
      $("send-delivery").hidden = false;
    }
  }

  async function refresh() {
    if ($("cliente-body").hidden) return;  // no access, or the page is still loading
    // First read: the last day's messages; then only what changed since the last change seen.
    let since = cursor || new Date(Date.now() - 86400e3).toISOString();
    for (let page = 0; page < 10; page++) {
      const data = await api("GET", `${base}/messages?limit=1000&since=${encodeURIComponent(since)}`);
      for (const m of data.messages) messages.set(m.message_id, m);
      if (data.messages.length) since = cursor = data.messages[data.messages.length - 1].updated_at;
      if (data.messages.length < 1000) break;
    }
    render();
  }

  // Polled only while the session can send: delivery receipts need a READY session anyway.
  function interval() {
    const badge = $("status-badge");
    return badge && badge.dataset.status === "READY" ? 1500 : 6000;
  }

  function start() {
    if (started) return;
    started = true;
    poll(refresh, interval);
  }

  window.LM.delivery = {
    track(data) {
      if (!data || !data.message_id) return;
      tracked = data.message_id;
      const row = { message_id: data.message_id, to: data.to || data.jid, status: "SENT",
        sent_at: data.timestamp, delivered_at: null, read_at: null };
      if (!messages.has(tracked)) messages.set(tracked, row);
      render();
      start();
      refresh().catch(() => {});
    },
  };

  // The first status poll of cliente.js tells whether the page may read messages (403 otherwise).
  setTimeout(start, 500);

  function parsePhones(text) {
    return text.split(/[\s,;]+/).map((p) => p.trim()).filter(Boolean);
  }

  $("check-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const out = $("check-outcome");
    const phones = parsePhones($("check-phones").value);
    if (phones.length === 0 || phones.length > 50) {
      show(out, `✗ Enter 1 to 50 numbers (got ${phones.length}).`, true);
      return;
    }
    await busy(event.currentTarget.querySelector("button"), async () => {
      try {
        const data = await api("POST", `${base}/contacts/check`, { phones });
        $("check-body").replaceChildren(...data.results.map((r) => el("tr", {},
          el("td", { text: r.phone }),
          el("td", { class: r.on_whatsapp ? "yes" : "no", text: r.on_whatsapp ? "✓ Yes" : "✗ No" }),
          el("td", {}, r.jid ? el("code", { text: r.jid }) : "—"))));
        $("check-table").hidden = false;
        const yes = data.results.filter((r) => r.on_whatsapp).length;
        show(out, `${yes} of ${data.results.length} on WhatsApp.`, false);
      } catch (err) {
        $("check-table").hidden = true;  // the previous answer would read as this one's
        if (err.code === "RATE_LIMITED") {
          const wait = Number(err.body.retry_after || 0);  // the hub copies Retry-After into the body
          const when = wait ? ` Try again in ${Math.ceil(wait / 60)} min.` : " Try again later.";
          out.replaceChildren(`✗ Too many new lookups this hour (RATE_LIMITED).${when}`,
            el("small", { class: "detail", text: "Numbers checked in the last day are answered at once: only new ones count. " + err.message }));
          out.classList.add("is-error");
          out.hidden = false;
        } else {
          explain(out, "✗ Not checked: ", err);
        }
      }
    });
  });
});
