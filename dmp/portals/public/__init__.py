"""Public communication portal."""
