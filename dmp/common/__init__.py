"""Shared building blocks: errors, clock, hardened XML, security headers."""
