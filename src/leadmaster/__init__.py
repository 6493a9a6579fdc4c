"""LeadMaster WhatsApp backbone: the session-manager and the central hub."""

__version__ = "0.1.0"
