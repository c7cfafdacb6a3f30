"""A document keeps its metadata whichever channel it goes in and out by: the vendor client's
ITI-65 Bundle reads back as the submission it was written from, and what the FHIR API shows of a
stored document reads back as the registry's row. Authors' roles, specialties, telecom and
structure, the legal authenticator, sourcePatientInfo, reference ids, event codes and comments
were dropped on one side or the other."""

from __future__ import annotations

import json

import pytest
import requests

from dmp.demo.scenarios import author_info
from dmp.documents.builders import DocumentDraft, submission_for
from dmp.documents.metadata import Author, CodedValue, SubmissionInput
from dmp.documents.models import DocumentEntry
from dmp.ihe.mhd.contained import read_authenticator, read_author, read_source_patient
from dmp.ihe.mhd.ingest import parse_bundle
from dmp.ihe.mhd.tests.test_mhd_end_to_end import INS_SYSTEM
from opendmp_client.fhir import bundle_for

TELECOM = ("^NET^Internet^bernard.lefevre@medecin.mssante.fr", "^PRN^PH^^^^^^^^^0102030405")
LEGAL_AUTHENTICATOR = "810000010016^LEFÈVRE^Bernard^^^^^^&1.2.250.1.71.4.2.1&ISO"
SOURCE_PATIENT = (
    "PID-3|285033523810113^^^&1.2.250.1.213.1.4.8&ISO",
    "PID-5|MARTIN^Alice",
    "PID-7|19850315",
    "PID-8|F",
)
REFERENCE_IDS = ("ORD-2026-42^^^&1.2.250.1.999.1&ISO^urn:ihe:iti:xds:2013:order",)
EVENT = CodedValue(code="I10", scheme="2.16.840.1.113883.6.3", display="Hypertension essentielle")


def rich(submission: SubmissionInput) -> SubmissionInput:
    """`submission` with every optional metadata a vendor may send."""
    documents = []
    for document in submission.documents:
        authors = tuple(a.model_copy(update={"telecom": TELECOM}) for a in document.authors)
        documents.append(
            document.model_copy(
                update={
                    "authors": authors,
                    "legal_authenticator": LEGAL_AUTHENTICATOR,
                    "source_patient_info": SOURCE_PATIENT,
                    "reference_ids": REFERENCE_IDS,
                    "event_codes": (EVENT,),
                    "comments": "Consultation de suivi",
                }
            )
        )
    return submission.model_copy(update={"documents": tuple(documents)})


def same_author(read: Author, written: Author) -> None:
    assert (read.person_id, read.family_name, read.given_name) == (
        written.person_id,
        written.family_name,
        written.given_name,
    )
    assert (read.roles, read.specialties, read.telecom) == (
        written.roles,
        written.specialties,
        written.telecom,
    )
    assert read.structure_id == written.structure_id
    assert [i.split("^")[0] for i in read.institutions] == [i.split("^")[0] for i in written.institutions]


@pytest.mark.django_db
def test_the_clients_bundle_reads_back_as_the_submission_it_was_written_from(personas):
    submission = rich(
        submission_for(
            ins=personas.alice.identifier,
            author=author_info(personas.dr_bernard, personas.cabinet),
            drafts=[DocumentDraft()],
        )
    )
    (written,) = submission.documents
    read_back = parse_bundle(json.loads(json.dumps(bundle_for(submission))))
    (read,), read_set = read_back.documents, read_back.submission_set
    assert written.authors[0].roles
    assert written.authors[0].specialties
    assert written.authors[0].institutions
    assert len(read.authors) == 1
    same_author(read.authors[0], written.authors[0])
    assert read.legal_authenticator == LEGAL_AUTHENTICATOR
    assert read.source_patient_info == SOURCE_PATIENT
    assert read.reference_ids == REFERENCE_IDS
    assert read.comments == "Consultation de suivi"
    # Codes keep their display names (the client wrote none, so the registry stored them empty).
    coded = (
        "type_code",
        "class_code",
        "format_code",
        "healthcare_facility_type_code",
        "practice_setting_code",
        "confidentiality_codes",
        "event_codes",
    )
    assert all((written.type_code.display, written.class_code.display, written.event_codes[0].display))
    assert {name: getattr(read, name) for name in coded} == {name: getattr(written, name) for name in coded}
    assert read_set.content_type_code == submission.submission_set.content_type_code


def test_what_the_api_shows_of_a_stored_document_reads_back_as_the_registry_row(xds_kit, personas):
    token = xds_kit.token(personas.dr_bernard)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    base = f"{xds_kit.base_url}/fhir/"
    submission = rich(
        submission_for(
            ins=personas.alice.identifier,
            author=author_info(personas.dr_bernard, personas.cabinet),
            drafts=[DocumentDraft()],
        )
    )
    # In by FHIR: the registry row holds what the bundle said.
    answer = requests.post(base, data=json.dumps(bundle_for(submission)), headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    row = DocumentEntry.objects.get(unique_id=submission.documents[0].unique_id)
    assert row.legal_authenticator == LEGAL_AUTHENTICATOR
    assert tuple(row.source_patient_info) == SOURCE_PATIENT
    assert tuple(row.reference_ids) == REFERENCE_IDS
    assert row.comments == "Consultation de suivi"
    written = submission.documents[0]
    assert (row.type_code_display, row.class_code_display) == (
        written.type_code.display,
        written.class_code.display,
    )
    assert row.event_codes[0]["display"] == EVENT.display
    stored_author = Author.model_validate(row.authors[0])
    same_author(stored_author, submission.documents[0].authors[0])
    # Out by FHIR: the DocumentReference carries the row's metadata.
    found = requests.get(
        base + "DocumentReference",
        params={"patient.identifier": f"{INS_SYSTEM}|{personas.alice.ins}"},
        headers=headers,
        timeout=10,
    ).json()
    (resource,) = [
        e["resource"]
        for e in found["entry"]
        if e["resource"]["masterIdentifier"]["value"] == f"urn:oid:{row.unique_id}"
    ]
    contained = {f"#{r['id']}": r for r in resource.get("contained", [])}

    def resolve(reference, kind):
        found = contained.get(str((reference or {}).get("reference", "")))
        return found if found is not None and found["resourceType"] == kind else None

    same_author(read_author(resource["author"][0], resolve), stored_author)
    assert resource["author"][0]["identifier"]["value"] == stored_author.person_id  # logical reference kept
    assert read_authenticator(resource["authenticator"], resolve) == LEGAL_AUTHENTICATOR
    assert read_source_patient(resource["context"]["sourcePatientInfo"], resolve) == SOURCE_PATIENT
    assert [r["identifier"]["value"] for r in resource["context"]["related"]] == list(REFERENCE_IDS)
    assert resource["description"] == "Consultation de suivi"
    # The related search finds it by its reference id.
    related = requests.get(
        base + "DocumentReference",
        params={"patient.identifier": f"{INS_SYSTEM}|{personas.alice.ins}", "related": REFERENCE_IDS[0]},
        headers=headers,
        timeout=10,
    ).json()
    assert [e["resource"]["id"] for e in related["entry"]] == [resource["id"]]


def test_an_author_value_too_long_for_its_column_is_refused_on_every_database(xds_kit, personas):
    """A PractitionerRole code longer than the indexed author column reached the database:
    PostgreSQL failed the request (found by the mutation test), SQLite stored it."""
    token = xds_kit.token(personas.dr_bernard)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    submission = submission_for(
        ins=personas.alice.identifier,
        author=author_info(personas.dr_bernard, personas.cabinet),
        drafts=[DocumentDraft()],
    )
    (document,) = submission.documents
    long_role = document.authors[0].model_copy(update={"roles": ("R" * 40,)})
    submission = submission.model_copy(
        update={"documents": (document.model_copy(update={"authors": (long_role,)}),)}
    )
    before = DocumentEntry.objects.count()
    answer = requests.post(
        f"{xds_kit.base_url}/fhir/", data=json.dumps(bundle_for(submission)), headers=headers, timeout=10
    )
    assert answer.status_code == 422
    assert "role is longer than 16" in answer.text
    assert DocumentEntry.objects.count() == before


@pytest.mark.django_db
def test_each_document_of_a_bundle_keeps_its_own_contained_people(personas):
    """`#author-0` is local to the DocumentReference holding it: every document of a bundle read
    the first document's author, authenticator and patient."""
    bernard = author_info(personas.dr_bernard, personas.cabinet)
    submission = rich(
        submission_for(ins=personas.alice.identifier, author=bernard, drafts=[DocumentDraft()] * 2)
    )
    moreau = (
        submission_for(
            ins=personas.alice.identifier,
            author=author_info(personas.dr_moreau, personas.chu),
            drafts=[DocumentDraft()],
        )
        .documents[0]
        .authors
    )
    first, second = submission.documents
    second = second.model_copy(
        update={
            "authors": moreau,
            "legal_authenticator": "810000010024^MOREAU^Claire^^^^^^&1.2.250.1.71.4.2.1&ISO",
        }
    )
    submission = submission.model_copy(update={"documents": (first, second)})
    read = parse_bundle(json.loads(json.dumps(bundle_for(submission)))).documents
    assert [[a.person_id for a in d.authors] for d in read] == [
        [a.person_id for a in d.authors] for d in (first, second)
    ]
    assert [d.legal_authenticator.split("^")[0] for d in read] == ["810000010016", "810000010024"]
