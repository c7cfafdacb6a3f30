from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "dmp.common"
    label = "common"
    verbose_name = "Shared building blocks: errors, clock, hardened XML, security headers"
