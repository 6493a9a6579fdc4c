/* Admin forms: create clientes, users and API keys through the hub's /api/admin routes. */
"use strict";

document.addEventListener("DOMContentLoaded", async () => {
  const { api, el, $, describe, explain, show, busy } = window.LM;

  try {
    const me = await window.LM.requireLogin();
    if (me.role !== "admin") {
      show($("admin-error"), "Only admins can manage clientes, users and API keys.", true);
      return;
    }
  } catch (err) {
    show($("admin-error"), describe(err), true);
    return;
  }
  $("admin-body").hidden = false;

  async function loadClientes() {
    const clientes = await api("GET", "/api/clientes");
    for (const select of document.querySelectorAll(".cliente-select")) {
      const current = select.value;
      select.replaceChildren(el("option", { value: "", text: "— none —" }),
        ...clientes.map((c) => el("option", { value: String(c.id), text: `#${c.id} ${c.name}` })));
      select.value = current;
    }
  }
  loadClientes().catch((err) => show($("admin-error"), describe(err), true));

  function clienteIdOf(select) { return select.value ? Number(select.value) : undefined; }

  /* Wires one form: build the body, POST it, report the outcome under the form. */
  function wire(formId, outId, build, onOk) {
    const form = $(formId);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const out = $(outId);
      await busy(form.querySelector("button[type=submit]"), async () => {
        try {
          const data = await build();
          show(out, onOk(data), false);
          form.reset();
          await loadClientes();
        } catch (err) {
          explain(out, "✗ ", err);
        }
      });
    });
  }

  wire("cliente-form", "cliente-outcome", () => {
    const body = { id: Number($("nc-id").value), name: $("nc-name").value.trim() };
    const instance = $("nc-instance").value.trim();
    if (instance) body.instance_id = instance;
    return api("POST", "/api/admin/clientes", body);
  }, (c) => {
    const out = $("cliente-outcome");
    // A link straight to the next step: linking WhatsApp for the new cliente.
    setTimeout(() => out.append(" ", el("a", { href: `/clientes/${c.id}`, text: "Open it to link WhatsApp →" })));
    return `✓ Created cliente #${c.id} ${c.name} (instance ${c.instance_id}).`;
  });

  wire("user-form", "user-outcome", () => api("POST", "/api/admin/users", {
    username: $("nu-username").value.trim(),
    password: $("nu-password").value,
    role: $("nu-role").value,
    cliente_id: clienteIdOf($("nu-cliente")),
  }), (u) => `✓ Created ${u.role} ${u.username}` + (u.cliente_id ? ` for cliente #${u.cliente_id}.` : "."));

  wire("key-form", "key-outcome", () => api("POST", "/api/admin/api-keys", {
    name: $("nk-name").value.trim(),
    role: $("nk-role").value,
    cliente_id: clienteIdOf($("nk-cliente")),
  }), (k) => {
    $("key-value").value = k.key;
    $("key-secret").hidden = false;
    $("key-value").select();
    return `✓ Created API key #${k.id} (${k.prefix}…). Use it as "Authorization: Bearer <key>".`;
  });

  $("key-copy").addEventListener("click", async () => {
    const input = $("key-value");
    try {
      await navigator.clipboard.writeText(input.value);
    } catch (err) {
      // Clipboard API needs a secure context; selecting + execCommand still works on plain http.
      input.select();
      document.execCommand("copy");
    }
    $("key-copy").textContent = "Copied ✓";
    setTimeout(() => { $("key-copy").textContent = "Copy"; }, 2000);
  });

  wire("revoke-form", "revoke-outcome", async () => {
    const keyId = $("rk-id").value.trim();
    await api("DELETE", `/api/admin/api-keys/${encodeURIComponent(keyId)}`);
    return keyId;
  }, (keyId) => `✓ API key #${keyId} revoked.`);
});
