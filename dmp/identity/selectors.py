"""Reading identities: plain lookups, the access check belongs to the service that uses them."""

from __future__ import annotations

import uuid

from dmp.identity.models import LegalRepresentative


def legal_representative_get(*, patient_id: int, public_id: uuid.UUID) -> LegalRepresentative | None:
    """The legal representative `public_id` of patient `patient_id`; None if unknown or someone else's."""
    return LegalRepresentative.objects.filter(public_id=public_id, patient_id=patient_id).first()


__all__ = ["legal_representative_get"]
