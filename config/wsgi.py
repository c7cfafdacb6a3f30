"""WSGI entry point (gunicorn): the web services and the portals, each through its own middleware chain."""

import os

# Named before the import below, which reaches Django's settings.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from dmp.common.wsgi import get_channel_application

application = get_channel_application()
