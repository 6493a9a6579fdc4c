"""Engines: the adapters behind the port in `base.py`."""
