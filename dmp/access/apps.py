from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "dmp.access"
    label = "access"
    verbose_name = "The access decision point: pure policy, habilitation matrix, choke points"
