from django.apps import AppConfig


class CdaConfig(AppConfig):
    name = "dmp.cda"
    label = "cda"
    verbose_name = "CDA R2 (CI-SIS): builder, header extraction, validation, safe rendering"
