"""State of the XDS channel: VIHF assertions already used (replay protection across restarts),
and the entries' texts in query answers."""

from __future__ import annotations

from typing import Final

from django.db import models

from dmp.documents.models import DocumentEntry

# Its violation is how a replayed assertion shows, in whichever statement wrote the id (ADR 0016).
SEEN_ASSERTION_UNIQUE: Final = "seen_assertion_id_unique"


class SeenAssertion(models.Model):
    """A VIHF assertion id, kept until its validity window (plus skew) has passed."""

    assertion_id = models.CharField(max_length=128)
    expires_at = models.DateTimeField(db_index=True)
    seen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # A constraint rather than unique=True: PostgreSQL then keeps no second, pattern-matching
        # (`_like`) index that no query uses, on a table written on every call.
        constraints = [models.UniqueConstraint(fields=["assertion_id"], name=SEEN_ASSERTION_UNIQUE)]

    def __str__(self) -> str:
        return self.assertion_id


class EntryText(models.Model):
    """A document entry's text in query answers (ebRIM, from its `lid` on), written once when the
    entry is stored: a FindDocuments of 50 entries spent half of its CPU writing them again (ADR
    0013). For the `entry_uuid` it was written for: a new metadata version has a new one, and is
    written again from its row until `manage.py xds_entry_texts` writes its text. The status,
    which changes without a new version, is written with each answer (`ebrim.RenderedEntry`)."""

    document = models.OneToOneField(
        DocumentEntry, primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    entry_uuid = models.CharField(max_length=64)
    # The writer's `ebrim.ENTRY_TEXT_SHAPE` when written: a text of another shape is written again.
    shape = models.PositiveSmallIntegerField()
    text = models.TextField()

    def __str__(self) -> str:
        return self.entry_uuid
