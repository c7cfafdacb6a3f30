"""Web portal for patients."""
