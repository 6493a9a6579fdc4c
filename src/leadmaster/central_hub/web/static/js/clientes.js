/* Clientes list: one card per visible cliente with a live status badge and connect/disconnect/unlink. */
"use strict";

document.addEventListener("DOMContentLoaded", async () => {
  const { api, el, $, setBadge, describe, toast, poll, busy } = window.LM;
  const badges = new Map();

  let me;
  try {
    me = await window.LM.requireLogin();
  } catch (err) {
    $("clientes-loading").hidden = true;
    window.LM.show($("clientes-error"), describe(err), true);
    return;
  }
  $("add-cliente").hidden = me.role !== "admin";

  async function act(cliente, action, button) {
    if (action === "logout" && !confirm(`Unlink ${cliente.name}'s WhatsApp? Linking again needs a new QR scan.`)) return;
    await busy(button, async () => {
      try {
        const data = await api("POST", `/api/whatsapp/${cliente.id}/${action}`);
        if (data && data.status) setBadge(badges.get(cliente.id), data.status);
        toast(`${cliente.name}: ${action} → ${data && data.status ? data.status : "done"}`);
      } catch (err) {
        toast(`${cliente.name}: ${describe(err)}`, true);
      }
    });
  }

  function card(cliente) {
    const badge = el("span", { class: "badge", text: "…" });
    badges.set(cliente.id, badge);
    const button = (label, action, cls) => {
      const b = el("button", {
        type: "button", class: "btn btn-small " + (cls || ""), text: label,
        "aria-label": `${label} ${cliente.name}`,
      });
      b.addEventListener("click", () => act(cliente, action, b));
      return b;
    };
    return el("li", { class: "card cliente-item", dataset: { clienteId: String(cliente.id) } },
      el("div", {},
        el("h2", {}, el("a", { href: `/clientes/${cliente.id}`, text: cliente.name })),
        el("p", { class: "meta muted" }, `#${cliente.id} · instance `, el("code", { text: cliente.instance_id }),
          " · ", el("span", { class: "sr-only", text: "WhatsApp status: " }), badge)),
      el("div", { class: "actions" },
        el("a", { class: "btn btn-small btn-primary", href: `/clientes/${cliente.id}`, text: "Open",
          "aria-label": `Open ${cliente.name}` }),
        button("Connect", "connect"),
        button("Disconnect", "disconnect"),
        button("Unlink", "logout", "btn-danger")));
  }

  let clientes;
  try {
    clientes = await api("GET", "/api/clientes");
  } catch (err) {
    $("clientes-loading").hidden = true;
    window.LM.show($("clientes-error"), describe(err), true);
    return;
  }
  $("clientes-loading").hidden = true;
  if (!clientes.length) {
    const empty = $("clientes-empty");
    empty.replaceChildren(me.role === "admin"
      ? el("span", {}, "No clientes yet. ", el("a", { href: "/admin#new-cliente", text: "Create the first one" }),
        ", then open it to link a WhatsApp account.")
      : "Your account is not linked to a cliente yet. Ask an admin to assign one.");
    empty.hidden = false;
    return;
  }
  $("clientes").replaceChildren(...clientes.map(card));

  // Status is read per cliente so one unreachable session never hides the others.
  poll(async () => {
    await Promise.all(clientes.map(async (c) => {
      try {
        const data = await api("GET", `/api/whatsapp/${c.id}/status`);
        setBadge(badges.get(c.id), data.status);
        badges.get(c.id).title = data.reason || "";
      } catch (err) {
        setBadge(badges.get(c.id), err.code === "SESSION_MANAGER_UNREACHABLE" ? "UNREACHABLE" : "ERROR");
        badges.get(c.id).title = describe(err);
      }
    }));
  }, 5000);
});
