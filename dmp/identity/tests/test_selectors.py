"""Identity reads: a legal representative is found only under the patient it represents."""

from __future__ import annotations

import uuid

from dmp.identity.selectors import legal_representative_get


def test_a_legal_representative_is_found_only_for_its_own_patient(personas):
    mother = personas.alice_as_mother
    assert legal_representative_get(patient_id=personas.leo.pk, public_id=mother.public_id) == mother
    assert legal_representative_get(patient_id=personas.alice.pk, public_id=mother.public_id) is None
    assert legal_representative_get(patient_id=personas.leo.pk, public_id=uuid.uuid4()) is None
