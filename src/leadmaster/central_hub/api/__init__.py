"""The hub's HTTP surface."""
