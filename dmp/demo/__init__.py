"""Synthetic demo population generator."""
