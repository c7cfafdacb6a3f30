"""ITI-67 search renders `DocumentRow`s, no `DocumentEntry` model: each DocumentReference it
answers is the one a read of that document answers, field for field."""

from __future__ import annotations

import pytest
from django.db.models.signals import post_init

from dmp.demo.scenarios import author_info
from dmp.documents.access import one_document
from dmp.documents.builders import DocumentDraft, submission_for
from dmp.documents.metadata import CodedValue, ConfidentialityChange
from dmp.documents.models import DocumentEntry
from dmp.documents.services import document_change_confidentiality, submission_register
from dmp.ihe.mhd.tests.test_mhd_end_to_end import INS_SYSTEM
from dmp.ihe.mhd.tests.test_replaced_entry_uuid import get

pytestmark = pytest.mark.django_db(transaction=True)


def publish(personas, drafts, *, replaces=None, second_author=False):
    author = author_info(personas.dr_bernard, personas.cabinet)
    submission = submission_for(
        ins=personas.alice.identifier, author=author, drafts=drafts, replaces=replaces
    )
    if second_author:
        moreau = author_info(personas.dr_moreau, personas.cabinet)
        first = submission.documents[0]
        submission = submission.model_copy(
            update={
                "documents": (
                    first.model_copy(
                        update={
                            "authors": (*first.authors, moreau.xds()),
                            "reference_ids": ("1.2.3^^^&1.2.250.1.999&ISO^urn:ihe:iti:xds:2013:order",),
                            "source_patient_info": ("PID-5|MARTIN^Alice", "PID-7|19800101"),
                            "event_codes": (
                                CodedValue(code="E1", scheme="1.2.250.1.999.3", display="Évènement"),
                            ),
                        }
                    ),
                    *submission.documents[1:],
                )
            }
        )
    submission_register(caller=personas.ps(personas.dr_bernard), submission=submission)
    return [DocumentEntry.objects.get(unique_id=d.unique_id) for d in submission.documents]


def test_a_search_builds_no_document_model_and_answers_what_each_read_answers(xds_kit, personas):
    bernard = personas.ps(personas.dr_bernard)
    first, _ = publish(personas, [DocumentDraft(title="Compte rendu"), DocumentDraft(title="Ordonnance")])
    (multi,) = publish(personas, [DocumentDraft(title="Deux auteurs")], second_author=True)
    # Its authors' ids come with the document, in the authors' order.
    read = one_document(unique_id=multi.unique_id)
    assert read is not None
    assert read.author_pairs == (
        (personas.dr_bernard.national_id, personas.cabinet.id_nat),
        (personas.dr_moreau.national_id, personas.cabinet.id_nat),
    )
    publish(personas, [DocumentDraft(title="Compte rendu v2")], replaces={0: first.entry_uuid})
    (masked,) = publish(personas, [DocumentDraft(title="Masqué")])
    document_change_confidentiality(
        caller=bernard,
        entry_uuid=masked.entry_uuid,
        change=ConfidentialityChange(code="MASQUE_PS", enabled=True),
        patient=personas.alice.identifier,
    )
    token = xds_kit.token(personas.dr_bernard)
    alice = f"patient.identifier={INS_SYSTEM}|{personas.alice.ins}"
    built: list[DocumentEntry] = []

    def count(sender, instance, **kwargs):
        built.append(instance)

    post_init.connect(count, sender=DocumentEntry)
    try:
        found = get(xds_kit, token, f"DocumentReference?{alice}&status=current,superseded")
    finally:
        post_init.disconnect(count, sender=DocumentEntry)
    assert found.status_code == 200, found.text
    assert built == []
    resources = [entry["resource"] for entry in found.json()["entry"]]
    titles = {r["content"][0]["attachment"].get("title") for r in resources}
    # The replaced one (superseded), the one of two authors, the masked one its author sees.
    assert {"Compte rendu", "Deux auteurs", "Masqué", "Compte rendu v2", "Ordonnance"} <= titles
    assert any(r["status"] == "superseded" for r in resources)
    for resource in resources:
        read = get(xds_kit, token, f"DocumentReference/{resource['id']}")
        assert read.status_code == 200, read.text
        assert resource == read.json()
    two = next(r for r in resources if r["id"] == multi.entry_uuid.removeprefix("urn:uuid:"))
    assert len(two["author"]) == 2
    assert two["context"]["related"]
    assert two["context"]["event"]
    assert "sourcePatientInfo" in two["context"]
