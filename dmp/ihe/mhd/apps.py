from django.apps import AppConfig


class MhdConfig(AppConfig):
    name = "dmp.ihe.mhd"
    label = "mhd"
    verbose_name = "IHE MHD / PDSm FHIR R4 API"
