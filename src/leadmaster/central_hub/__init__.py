"""The central hub: the business API in front of the session-manager. Never imports a WhatsApp library."""
