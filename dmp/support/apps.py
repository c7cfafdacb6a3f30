from django.apps import AppConfig


class SupportConfig(AppConfig):
    name = "dmp.support"
    label = "support"
    verbose_name = "SI Support: helpdesk ticketing"
