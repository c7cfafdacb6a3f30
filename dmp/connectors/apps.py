from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    name = "dmp.connectors"
    label = "connectors"
    verbose_name = "External sources: reimbursement history, pharmacy dossier"
