"""The exceptional-access notifier no longer follows audit keys after a cursor: it consumes the
`audit.PendingNotice` rows written with each exceptional event. The events past the cursor,
not told yet, become pending notices before the cursor goes."""

from django.db import migrations

EXCEPTIONAL_MODES = ("bris_de_glace", "centre_15")


def carry_over(apps, schema_editor):
    cursor = apps.get_model("accounts", "NotificationCursor").objects.filter(pk=1).first()
    last_event_id = cursor.last_event_id if cursor is not None else 0
    events = (
        apps.get_model("audit", "AuditEvent")
        .objects.filter(pk__gt=last_event_id, access_mode__in=EXCEPTIONAL_MODES, outcome="success")
        .exclude(record_id=None)
        .values_list("pk", flat=True)
    )
    notice = apps.get_model("audit", "PendingNotice")
    notice.objects.bulk_create([notice(event_id=pk) for pk in events.iterator()], batch_size=5000)


def back_to_cursor(apps, schema_editor):
    """The cursor stops before the first event not told yet (or after the last event)."""
    first_pending = (
        apps.get_model("audit", "PendingNotice")
        .objects.order_by("event_id")
        .values_list("event_id", flat=True)
        .first()
    )
    last_event = (
        apps.get_model("audit", "AuditEvent").objects.order_by("-pk").values_list("pk", flat=True).first()
    )
    last_event_id = first_pending - 1 if first_pending is not None else last_event or 0
    apps.get_model("accounts", "NotificationCursor").objects.update_or_create(
        pk=1, defaults={"last_event_id": last_event_id}
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_web_account_pending_reissue"),
        ("audit", "0003_pending_notice"),
    ]

    operations = [
        migrations.RunPython(carry_over, back_to_cursor),
        migrations.DeleteModel(name="NotificationCursor"),
    ]
