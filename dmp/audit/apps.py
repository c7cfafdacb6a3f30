from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "dmp.audit"
    label = "audit"
    verbose_name = "Append-only, hash-chained audit trail"
