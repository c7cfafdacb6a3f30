"""Shared pytest fixtures (personas are added as the domain grows)."""
