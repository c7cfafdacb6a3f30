from django.apps import AppConfig


class RecordsConfig(AppConfig):
    name = "dmp.records"
    label = "records"
    verbose_name = "The DMP itself: lifecycle, consent, authorisations, expression space"
