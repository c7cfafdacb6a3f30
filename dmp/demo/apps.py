from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "dmp.demo"
    label = "demo"
    verbose_name = "Synthetic demo population generator"
