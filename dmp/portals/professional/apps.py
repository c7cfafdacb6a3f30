from django.apps import AppConfig


class ProfessionalPortalConfig(AppConfig):
    name = "dmp.portals.professional"
    label = "professional_portal"
    verbose_name = "Web portal for health professionals"
