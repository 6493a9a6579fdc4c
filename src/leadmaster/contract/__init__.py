"""Wire-level names both services share (CONTRACT.md §1): status enum, ids, error body."""
