from django.apps import AppConfig


class TerminologyConfig(AppConfig):
    name = "dmp.terminology"
    label = "terminology"
    verbose_name = "Value sets of the DMP profile"
