"""Web portals (professional, patient, public)."""
