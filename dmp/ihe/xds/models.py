"""State of the XDS channel: VIHF assertions already used (replay protection across restarts)."""

from __future__ import annotations

from django.db import models


class SeenAssertion(models.Model):
    """A VIHF assertion id, kept until its validity window (plus skew) has passed."""

    assertion_id = models.CharField(max_length=128)
    expires_at = models.DateTimeField(db_index=True)
    seen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # A constraint rather than unique=True: PostgreSQL then keeps no second, pattern-matching
        # (`_like`) index that no query uses, on a table written on every call.
        constraints = [models.UniqueConstraint(fields=["assertion_id"], name="seen_assertion_id_unique")]

    def __str__(self) -> str:
        return self.assertion_id
