"""Plumbing both services share: structured logs, request ids, metrics. No business rules here."""
