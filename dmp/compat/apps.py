from django.apps import AppConfig


class CompatConfig(AppConfig):
    name = "dmp.compat"
    label = "compat"
    verbose_name = "DMP-compatibility: homologated software, test platform, dev kit"
