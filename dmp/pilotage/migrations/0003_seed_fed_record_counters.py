"""Seeds the fed-record counters (record_fed, fed_record_closed) from what was aggregated
before they existed: FedRecord rows, and the last closure or reactivation of each of those
records up to the cursor, so that the refresh goes on from the same point."""

from collections import Counter

from django.db import migrations

# AuditAction values, frozen here as migrations must not follow the code.
RECORD_CLOSE = 102
RECORD_REACTIVATE = 103


def seed(apps, schema_editor):
    FedRecord = apps.get_model("pilotage", "FedRecord")
    MetricCounter = apps.get_model("pilotage", "MetricCounter")
    AggregationCursor = apps.get_model("pilotage", "AggregationCursor")
    AuditEvent = apps.get_model("audit", "AuditEvent")
    cursor = AggregationCursor.objects.filter(name="audit").first()
    if cursor is None:
        return

    def hour(moment):
        return moment.replace(minute=0, second=0, microsecond=0)

    counts = Counter()
    for moment in FedRecord.objects.values_list("first_document_at", flat=True).iterator():
        counts[(hour(moment), "record_fed")] += 1
    last_change = {}
    changes = (
        AuditEvent.objects.filter(
            id__lte=cursor.last_id,
            action__in=[RECORD_CLOSE, RECORD_REACTIVATE],
            outcome="success",
            record_id__in=FedRecord.objects.values("record_id"),
        )
        .order_by("id")
        .values_list("record_id", "action", "occurred_at")
    )
    for record, action, moment in changes.iterator():
        last_change[record] = (action, moment)
    for action, moment in last_change.values():
        if action == RECORD_CLOSE:
            counts[(hour(moment), "fed_record_closed")] += 1
    MetricCounter.objects.bulk_create(
        [MetricCounter(hour=at, metric=metric, dimension="", value=n) for (at, metric), n in counts.items()],
        batch_size=1000,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_append_only_triggers"),
        ("pilotage", "0002_cursor_gaps"),
    ]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
