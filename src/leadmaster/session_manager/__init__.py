"""The session-manager: one WhatsApp session per instance_id, behind a pluggable engine."""
