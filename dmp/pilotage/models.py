"""SI Pilotage: aggregates derived incrementally from the audit trail and request metrics.

Only counters and pseudonymous hashes are kept here: no names, no INS, no document ids.
"""

from __future__ import annotations

from django.db import models


class MetricCounter(models.Model):
    """A counter for one hour: metric name + dimension (e.g. document_published / class 10)."""

    hour = models.DateTimeField()
    metric = models.CharField(max_length=64)
    dimension = models.CharField(max_length=64, blank=True)
    value = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hour", "metric", "dimension"], name="metric_counter_unique"),
        ]
        indexes = [models.Index(fields=["metric", "hour"], name="metric_counter_metric_idx")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.metric}[{self.dimension}]={self.value}"


class DailyActiveUser(models.Model):
    """A pseudonymous actor seen on a day (keyed hash), to count distinct active users."""

    day = models.DateField()
    actor_kind = models.CharField(max_length=24)
    actor_hash = models.CharField(max_length=32)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "actor_kind", "actor_hash"], name="daily_active_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.actor_kind}"


class FedRecord(models.Model):
    """Internal id of a record that has received at least one document.

    Looked up by key only, never counted: it tells whether a document is a record's first
    (record_fed) and whether a closure or reactivation changes the fed active records.
    """

    record_id = models.BigIntegerField(primary_key=True)
    first_document_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"record {self.record_id}"


class AggregationCursor(models.Model):
    """How far the audit trail is aggregated: every id up to last_id, except the gaps."""

    name = models.CharField(max_length=32, primary_key=True)
    last_id = models.BigIntegerField(default=0)
    # [[first id, last id, ISO time]]: ids passed while missing, which may still commit.
    gaps = models.JSONField(default=list)
    updated_at = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.last_id}"
