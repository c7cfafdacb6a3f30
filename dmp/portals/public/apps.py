from django.apps import AppConfig


class PublicPortalConfig(AppConfig):
    name = "dmp.portals.public"
    label = "public_portal"
    verbose_name = "Public communication portal"
