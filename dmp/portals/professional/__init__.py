"""Web portal for health professionals."""
