"""CDA R2 (CI-SIS): builder, header extraction, validation, safe rendering."""
