"""Celery tasks of the accounts context (eager, i.e. inline, in the embedded default)."""

from __future__ import annotations

from celery import shared_task

from dmp.accounts.services import exceptional_access_notify


@shared_task(name="accounts.notify_exceptional_access")  # type: ignore[untyped-decorator]
def notify_exceptional_access() -> int:
    return exceptional_access_notify()


def schedule_notification() -> None:
    """Registered with the audit layer: runs after the commit of each exceptional access."""
    notify_exceptional_access.delay()
