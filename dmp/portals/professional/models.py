from __future__ import annotations

from django.db import models


class UsedContextLink(models.Model):
    """Nonce of a contextual link (TD0.9) already opened: each link opens the portal once."""

    nonce = models.CharField(max_length=64, unique=True)
    used_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.nonce
