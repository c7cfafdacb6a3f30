"""Django's PostgreSQL backend, less a health check a busy connection does not need (`base`)."""
