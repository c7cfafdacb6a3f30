from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "dmp.identity"
    label = "identity"
    verbose_name = "Identities: patients (INS), health professionals, structures, certificates"
