from django.apps import AppConfig


class PilotageConfig(AppConfig):
    name = "dmp.pilotage"
    label = "pilotage"
    verbose_name = "SI Pilotage: real-time statistics"
