from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "dmp.accounts"
    label = "accounts"
    verbose_name = "Patient web accounts"

    def ready(self) -> None:
        # Patients are told about break-glass and Centre 15 accesses as soon as they are committed.
        from dmp.accounts.tasks import schedule_notification
        from dmp.audit.services import EXCEPTIONAL_ACCESS_HOOKS

        if schedule_notification not in EXCEPTIONAL_ACCESS_HOOKS:
            EXCEPTIONAL_ACCESS_HOOKS.append(schedule_notification)
