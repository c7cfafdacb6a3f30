"""Break-glass and Centre 15 open one record on FHIR: the token's patient, never a searched one."""

from __future__ import annotations

import urllib.error

import jwt
import pytest
import requests

from dmp.audit.models import AuditEvent
from dmp.demo.scenarios import author_info
from dmp.documents.builders import DocumentDraft, submission_for
from dmp.documents.models import DocumentEntry
from dmp.documents.services import submission_register
from dmp.ihe.mhd import auth
from dmp.ihe.mhd.tests.test_mhd_end_to_end import INS_SYSTEM
from dmp.ihe.xds.models import SeenAssertion
from dmp.records.models import Record

pytestmark = pytest.mark.django_db(transaction=True)


def leo_document(personas):
    submission = submission_for(
        ins=personas.leo.identifier,
        author=author_info(personas.dr_bernard, personas.cabinet),
        drafts=[DocumentDraft(title="Carnet de Léo")],
    )
    submission_register(caller=personas.ps(personas.dr_bernard), submission=submission)
    return submission.documents[0].unique_id


def emergency_events(record):
    return (
        AuditEvent.objects.filter(record_id=record.pk).exclude(access_mode="normal").exclude(access_mode="")
    )


@pytest.mark.parametrize(("purpose", "who"), [("bris_de_glace", "dr_petit"), ("centre_15", "dr_benali")])
def test_a_token_in_emergency_mode_without_a_patient_is_refused(xds_kit, personas, purpose, who):
    seen = SeenAssertion.objects.count()
    with pytest.raises(urllib.error.HTTPError) as refused:
        xds_kit.token(
            getattr(personas, who),
            patient_ins="",
            purpose_of_use=purpose,
            break_glass_reason="Patient inconscient",
        )
    assert refused.value.code == 401
    assert "patient_ins" in refused.value.read().decode()
    assert SeenAssertion.objects.count() == seen  # refused before the assertion was consumed


def test_an_emergency_token_without_a_patient_opens_no_record(xds_kit, personas):
    """A token minted without a patient in break-glass mode (as one could be before tokens had
    to name it, for ten minutes) searches no record: the emergency is bound to the token's patient."""
    leo_document(personas)
    leo = Record.objects.get(patient=personas.leo)
    plain = xds_kit.token(personas.dr_petit, patient_ins="")
    claims = jwt.decode(plain, options={"verify_signature": False})
    claims.update(mode="bris_de_glace", reason="Patient inconscient")
    token = jwt.encode(claims, auth._key(), algorithm="HS256")
    before = AuditEvent.objects.count()
    for resource in ("DocumentReference", "List"):
        answer = requests.get(
            f"{xds_kit.base_url}/fhir/{resource}",
            params={"patient.identifier": f"{INS_SYSTEM}|{personas.leo.ins}"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert answer.status_code == 403, answer.text
        assert "bris_de_glace" in answer.json()["issue"][0]["diagnostics"]
        assert "entry" not in answer.json()
    assert not emergency_events(leo).exists()
    assert AuditEvent.objects.count() == before


def test_an_emergency_token_bound_to_one_patient_searches_that_patient_only(xds_kit, personas):
    leo_document(personas)
    leo = Record.objects.get(patient=personas.leo)
    token = xds_kit.token(
        personas.dr_petit, purpose_of_use="bris_de_glace", break_glass_reason="Urgence vitale"
    )
    headers = {"Authorization": f"Bearer {token}"}
    other = requests.get(
        f"{xds_kit.base_url}/fhir/DocumentReference",
        params={"patient.identifier": f"{INS_SYSTEM}|{personas.leo.ins}"},
        headers=headers,
        timeout=10,
    )
    assert other.status_code == 403
    assert not emergency_events(leo).exists()
    own = requests.get(
        f"{xds_kit.base_url}/fhir/DocumentReference",
        params={"patient.identifier": f"{INS_SYSTEM}|{personas.alice.ins}"},
        headers=headers,
        timeout=10,
    )
    assert own.status_code == 200, own.text
    assert AuditEvent.objects.filter(
        record_id=Record.objects.get(patient=personas.alice).pk, access_mode="bris_de_glace"
    ).exists()
    assert DocumentEntry.objects.filter(record=leo).count() == 1
