"""Identities: patients (INS), health professionals, structures, certificates."""
