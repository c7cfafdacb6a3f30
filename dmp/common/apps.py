from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "dmp.common"
    label = "common"
    verbose_name = "Shared building blocks: errors, clock, hardened XML, security headers"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from dmp.common.staff import stamp_login

        # Django's own login hook, the one place every way of logging in (the staff login form,
        # tests' force_login, an admin) passes through: the session's lifetime starts there.
        user_logged_in.connect(stamp_login, dispatch_uid="opendmp-staff-login-time")
