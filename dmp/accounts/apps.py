from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "dmp.accounts"
    label = "accounts"
    verbose_name = "Patient web accounts"
