"""Identity reads: legal representatives under their patient; reference rows remembered briefly."""

from __future__ import annotations

import time
import uuid

import pytest
from django.utils import timezone

from dmp.identity.models import Structure
from dmp.identity.selectors import legal_representative_get, registered_certificate, structure_get


def test_a_legal_representative_is_found_only_for_its_own_patient(personas):
    mother = personas.alice_as_mother
    assert legal_representative_get(patient_id=personas.leo.pk, public_id=mother.public_id) == mother
    assert legal_representative_get(patient_id=personas.alice.pk, public_id=mother.public_id) is None
    assert legal_representative_get(patient_id=personas.leo.pk, public_id=uuid.uuid4()) is None


def test_reference_rows_are_remembered_for_the_configured_delay_only(personas, settings, monkeypatch):
    from dmp.identity.models import Certificate
    from dmp.identity.pki import certificate_register, create_test_pki

    settings.OPENDMP_REFERENCE_CACHE_SECONDS = 30
    _, sign = create_test_pki().cps_card(national_id="810000010016", display_name="Dr B")
    certificate_register(sign, usage=Certificate.Usage.CPS_SIGN, professional=personas.dr_bernard)
    assert registered_certificate(sign.fingerprint) is not None
    # Revoked by another process (an IGC import): this worker sees it once the delay is over.
    Certificate.objects.filter(fingerprint_sha256=sign.fingerprint).update(revoked_at=timezone.now())
    assert registered_certificate(sign.fingerprint) is not None
    later = time.monotonic() + 31
    monkeypatch.setattr(time, "monotonic", lambda: later)  # the module reads time.monotonic()
    assert registered_certificate(sign.fingerprint) is None
    # Structures likewise; with the delay at 0 every call reads the database.
    cabinet = personas.cabinet
    assert structure_get(cabinet.id_nat) == cabinet
    Structure.objects.filter(pk=cabinet.pk).update(name="Renamed")
    assert getattr(structure_get(cabinet.id_nat), "name", None) == cabinet.name
    settings.OPENDMP_REFERENCE_CACHE_SECONDS = 0
    assert getattr(structure_get(cabinet.id_nat), "name", None) == "Renamed"


def test_a_registration_in_this_process_is_seen_at_once(personas, settings):
    from dmp.compat.services import UnknownSoftware, software_check, software_register

    settings.OPENDMP_REFERENCE_CACHE_SECONDS = 30
    number = "OPENDMP-NOT-YET-REGISTERED"
    with pytest.raises(UnknownSoftware):
        software_check(number)  # remembered as unknown...
    software_register(vendor="V", name="N", number=number)
    assert software_check(number).name == "N"  # ...until this process registers it
