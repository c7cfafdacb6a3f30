"""An entryUUID that an ITI-57 update replaced still names its document on FHIR, as it does in
SOAP's GetDocuments (ADR 0001): DocumentReference/<old id> and Binary/<old id> answer with the
document as it is now, in the token patient's record only, and the policy still decides."""

from __future__ import annotations

import pytest
import requests

from dmp.demo.scenarios import author_info
from dmp.documents.builders import DocumentDraft, submission_for
from dmp.documents.metadata import ConfidentialityChange
from dmp.documents.models import DocumentEntry
from dmp.documents.services import document_change_confidentiality, submission_register

pytestmark = pytest.mark.django_db(transaction=True)


def updated_document(personas, patient, title="Compte rendu"):
    """A document of `patient` whose entryUUID an update (masking) replaced: (old id, document)."""
    submission = submission_for(
        ins=patient.identifier,
        author=author_info(personas.dr_bernard, personas.cabinet),
        drafts=[DocumentDraft(title=title)],
    )
    bernard = personas.ps(personas.dr_bernard)
    submission_register(caller=bernard, submission=submission)
    document = DocumentEntry.objects.get(unique_id=submission.documents[0].unique_id)
    old = document.entry_uuid
    document_change_confidentiality(
        caller=bernard,
        entry_uuid=old,
        change=ConfidentialityChange(code="MASQUE_PS", enabled=True),
        patient=patient.identifier,
    )
    document.refresh_from_db()
    assert document.entry_uuid != old
    return old.removeprefix("urn:uuid:"), document, submission.documents[0].content


def get(kit, token, path, **headers):
    return requests.get(
        f"{kit.base_url}/fhir/{path}", headers={"Authorization": f"Bearer {token}", **headers}, timeout=10
    )


def test_an_old_entry_uuid_reads_the_document_as_it_is_now(xds_kit, personas):
    old, document, content = updated_document(personas, personas.alice)
    token = xds_kit.token(personas.dr_bernard)
    read = get(xds_kit, token, f"DocumentReference/{old}")
    assert read.status_code == 200, read.text
    assert read.json()["id"] == document.entry_uuid.removeprefix("urn:uuid:")
    assert any(c["code"] == "MASQUE_PS" for label in read.json()["securityLabel"] for c in label["coding"])
    raw = get(xds_kit, token, f"Binary/{old}")
    assert raw.status_code == 200
    assert raw.content == content


def test_an_old_entry_uuid_is_still_subject_to_the_policy_and_to_the_token_patient(xds_kit, personas):
    old, _, _ = updated_document(personas, personas.alice)
    # Masked to PS: a PS who is neither author nor médecin traitant does not see it by any id.
    moreau = xds_kit.token(personas.dr_moreau)
    assert get(xds_kit, moreau, f"DocumentReference/{old}").status_code == 404
    assert get(xds_kit, moreau, f"Binary/{old}").status_code == 404
    # Another patient's old id, with a token bound to Alice: unknown.
    leo_old, _, _ = updated_document(personas, personas.leo, title="Carnet de Léo")
    bernard = xds_kit.token(personas.dr_bernard)
    assert get(xds_kit, bernard, f"DocumentReference/{leo_old}").status_code == 404
    assert get(xds_kit, bernard, f"Binary/{leo_old}").status_code == 404
