# mypy: disable-error-code="union-attr,index,arg-type"
"""The ANS PDSm example resources (`../shared/material/ans-pdsm`) against the FHIR channel.

Each example parses with fhir.resources; the comprehensive SubmissionSet + DocumentReference +
Binary, put into an ITI-65 Bundle, map to the XDS metadata they state; and that Bundle is
accepted end to end once what ties it to the IG's fictional world is replaced (listed in
`_into_our_world`). Where an example contradicts the DMP profile, the answer names the fault.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.operationoutcome import OperationOutcome

from dmp.cda.builder import CdaAuthor, CdaDocumentSpec, CdaOrganization, build_cda
from dmp.cda.header import extract_header
from dmp.documents.builders import cda_patient_for
from dmp.documents.models import DocumentEntry
from dmp.ihe.mhd.ingest import parse_bundle


def _material() -> Path | None:
    here = Path(__file__).resolve()
    for candidate in (here.parents[5] / "shared", Path("/work/shared")):
        folder = candidate / "material" / "ans-pdsm" / "built-ig-gh-pages"
        if folder.is_dir():
            return folder
    return None


PDSM = _material()
pytestmark = [pytest.mark.material, pytest.mark.skipif(PDSM is None, reason="../shared/material is absent")]
INSTANCES = (
    "Binary-6789.json",
    "Bundle-a9c10f8a-882d-4000-a280-7150e0aeb478.json",
    "DocumentReference-PDSmSimplifiedExample.json",
    "DocumentReference-exemple-pdsm-documentreference.json",
    "List-ExampleFolder.json",
    "List-ExampleSubmissionSet.json",
    "Organization-org-example.json",
    "Patient-fr-patient-123.json",
    "CapabilityStatement-PDSm-GestionnaireDePartageDeDocuments.json",
)
EXAMPLE_INS = {"system": "urn:oid:1.2.250.1.213.1.4.10", "value": "285033523810113"}


def example(name: str) -> dict[str, Any]:
    assert PDSM is not None
    loaded: dict[str, Any] = json.loads((PDSM / name).read_text(encoding="utf-8"))
    return loaded


def example_bundle(patient: dict[str, Any] | None = None) -> dict[str, Any]:
    """The IG's SubmissionSet, DocumentReference and Binary as one ITI-65 transaction."""
    entries = []
    for name, kind in (
        ("List-ExampleSubmissionSet.json", "List"),
        ("DocumentReference-exemple-pdsm-documentreference.json", "DocumentReference"),
        ("Binary-6789.json", "Binary"),
    ):
        resource = example(name)
        entries.append(
            {
                "fullUrl": f"http://example.org/fhir/{kind}/{resource['id']}",
                "resource": resource,
                "request": {"method": "POST", "url": kind},
            }
        )
    if patient is not None:
        entries.append(
            {
                "fullUrl": "http://example.org/fhir/Patient/fr-patient-123",
                "resource": patient,
                "request": {"method": "POST", "url": "Patient"},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


@pytest.mark.parametrize("name", INSTANCES)
def test_every_example_instance_parses(name):
    resource = example(name)
    model = get_fhir_model_class(resource["resourceType"])
    assert model.model_validate(resource).model_dump()["id"] == resource["id"]


def test_the_comprehensive_example_maps_to_the_metadata_it_states():
    patient = {**example("Patient-fr-patient-123.json"), "identifier": [EXAMPLE_INS]}
    submission = parse_bundle(example_bundle(patient))
    subset = submission.submission_set
    assert subset.patient_id == "285033523810113^^^&1.2.250.1.213.1.4.10&ISO^NH"
    assert subset.unique_id == f"2.25.{uuid.UUID('11111111-aaaa-bbbb-cccc-222222222222').int}"
    assert subset.source_id == "1.2.250.1.213.1.1.1"
    assert (subset.content_type_code.code, subset.content_type_code.scheme) == ("SA05", "1.2.250.1.71.4.2.4")
    assert subset.title == "Dossier de suivi post-opératoire"
    [document] = submission.documents
    assert document.unique_id == f"2.25.{uuid.UUID('12345678-abcd-1234-abcd-1234567890ab').int}"
    assert (document.type_code.code, document.type_code.scheme) == ("34133-9", "2.16.840.1.113883.6.1")
    assert (document.class_code.code, document.class_code.scheme) == ("10", "1.2.250.1.213.1.1.4.1")
    assert (document.format_code.code, document.format_code.scheme) == (
        "urn:ihe:lab:xd-lab:2008",
        "1.3.6.1.4.1.19376.1.2.3",
    )
    assert document.healthcare_facility_type_code.code == "SA01"
    assert document.healthcare_facility_type_code.scheme == "1.2.250.1.71.4.2.4"
    assert document.practice_setting_code.code == "ETABLISSEMENT"
    assert document.practice_setting_code.scheme == "1.2.250.1.213.1.1.4.9"
    assert [(c.code, c.scheme) for c in document.confidentiality_codes] == [("N", "1.2.250.1.213.1.1.4.13")]
    assert document.service_start_time == dt.datetime.fromisoformat("2025-04-20T08:00:00+01:00")
    assert document.service_stop_time == dt.datetime.fromisoformat("2025-04-25T08:00:00+01:00")
    assert document.creation_time == dt.datetime.fromisoformat("2025-04-25T09:30:00+01:00")
    assert (document.title, document.language_code, document.mime_type) == (
        "CR Hospitalisation",
        "fr-FR",
        "application/pdf",
    )
    assert document.comments == "Compte rendu d’hospitalisation suite à une chirurgie."
    assert document.content == b"Hello World"
    assert (document.declared_size, document.declared_hash) == (
        345678,
        hashlib.sha1(b"", usedforsecurity=False).hexdigest(),
    )
    # The author: PractitionerRole (in the SubmissionSet) -> contained Practitioner (IDNPS) and
    # Organization (IDNST).
    [author] = document.authors
    assert (author.person_id, author.family_name, author.given_name) == ("810101201234", "Leclerc", "Sophie")
    assert author.structure_id == "2264403106"


def test_a_patient_without_ins_is_refused_with_the_reason():
    with pytest.raises(Exception, match="no INS identifier"):
        parse_bundle(example_bundle(example("Patient-fr-patient-123.json")))
    with pytest.raises(Exception, match="Patient/fr-patient-123"):
        parse_bundle(example_bundle())


def leclerc_cda(reference: dict[str, Any], *, ins, names, body: bytes) -> bytes:
    """A CDA level 1 by the IG's author (Dr Leclerc) whose header states what `reference` says:
    uniqueId (from its UUID masterIdentifier), type, title, creation, facility, setting, period."""
    attachment = reference["content"][0]["attachment"]
    context = reference.get("context") or {}
    period = context.get("period") or {}
    unique = uuid.UUID(reference["masterIdentifier"]["value"].removeprefix("urn:uuid:"))
    return build_cda(
        CdaDocumentSpec(
            id_root=f"2.25.{unique.int}",
            type_code=reference["type"]["coding"][0]["code"],
            title=attachment["title"],
            effective_time=dt.datetime.fromisoformat(attachment["creation"]),
            patient=cda_patient_for(
                ins, family_name=names[0], given_names=names[1], birth_date=names[2], sex=names[3]
            ),
            author=CdaAuthor(
                national_id="810101201234",
                family_name="Leclerc",
                given_name="Sophie",
                profession_code="10",
                specialty_code="SM26",
                organization=CdaOrganization(
                    id_nat="2264403106",
                    name="HOPITAL INTERCOMMUNAL DE LA PRESQU'ILE G",
                    facility_type_code=context["facilityType"]["coding"][0]["code"],
                    practice_setting_code=context["practiceSetting"]["coding"][0]["code"],
                ),
            ),
            service_start=dt.datetime.fromisoformat(period["start"]) if "start" in period else None,
            service_stop=dt.datetime.fromisoformat(period["end"]) if "end" in period else None,
            pdf=b"%PDF-1.4\n" + body,
        )
    )


def attach(reference: dict[str, Any], cda: bytes, *, inline: bool) -> None:
    """The attachment and format of `reference` now describe `cda` (its bytes too when inline)."""
    attachment = reference["content"][0]["attachment"]
    attachment.update(
        contentType="text/xml",
        size=len(cda),
        hash=base64.b64encode(hashlib.sha1(cda, usedforsecurity=False).digest()).decode(),
    )
    if inline:
        attachment["data"] = base64.b64encode(cda).decode()
    reference["content"][0]["format"] = {
        "system": "urn:oid:1.3.6.1.4.1.19376.1.2.3",
        "code": extract_header(cda).format_code.code,
    }


def diagnostics(response: requests.Response) -> str:
    return " | ".join(
        issue.diagnostics or "" for issue in OperationOutcome.model_validate(response.json()).issue
    )


@dataclass(frozen=True)
class AliceOverFhir:
    base: str
    headers: dict[str, str]
    patient_id: str  # as the TD0.2 Patient search returns it
    names: tuple[Any, ...]


@pytest.fixture
def alice_fhir(xds_kit, personas) -> AliceOverFhir:
    base = f"{xds_kit.base_url}/fhir"
    headers = {
        "Authorization": f"Bearer {xds_kit.token(personas.dr_bernard)}",
        "Content-Type": "application/fhir+json",
    }
    alice = personas.alice
    found = requests.get(
        f"{base}/Patient",
        params={"identifier": f"urn:oid:{alice.identifier.oid}|{alice.ins}"},
        headers=headers,
        timeout=10,
    ).json()
    names = (alice.birth_family_name, alice.given_names, alice.birth_date, alice.sex)
    return AliceOverFhir(base, headers, found["entry"][0]["resource"]["id"], names)


def _into_our_world(bundle: dict[str, Any], *, patient_id: str, ins, names) -> bytes:
    """Ties the example to this DMP, changing only what cannot hold here:
    - subject: the IG's fictional Patient/fr-patient-123 becomes the Patient the TD0.2 search returned;
    - content: the DMP stores CDA only, so the Binary becomes a CDA level 1 (PDF body) whose
      header states the example's metadata; contentType, format, hash and size follow from it;
    - securityLabel: the example files "N" under TRE_A07, where it does not exist; it is HL7's;
    - category: typeCode 34133-9 belongs to classCode 11 in the DMP's type -> class table, not 10.
    """
    reference = bundle["entry"][1]["resource"]
    subset = bundle["entry"][0]["resource"]
    for resource in (subset, reference):
        resource["subject"] = {"reference": f"Patient/{patient_id}"}
    reference["context"]["sourcePatientInfo"] = {"reference": f"Patient/{patient_id}"}
    cda = leclerc_cda(
        reference, ins=ins, names=names, body=base64.b64decode(bundle["entry"][2]["resource"]["data"])
    )
    attach(reference, cda, inline=False)
    reference["category"][0]["coding"][0].update(code="11", display="Synthèse")
    reference["securityLabel"] = [
        {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "N"}]}
    ]
    bundle["entry"][2]["resource"] = {
        **bundle["entry"][2]["resource"],
        "contentType": "text/xml",
        "data": base64.b64encode(cda).decode(),
    }
    return cda


@pytest.mark.django_db(transaction=True)
def test_the_example_bundle_is_accepted_end_to_end(alice_fhir, personas):
    base, headers, patient_id = alice_fhir.base, alice_fhir.headers, alice_fhir.patient_id
    alice = personas.alice

    # Unchanged, the example is refused with the DMP's reasons, and nothing is stored.
    raw = example_bundle()
    for resource in (raw["entry"][0]["resource"], raw["entry"][1]["resource"]):
        resource["subject"] = {"reference": f"Patient/{patient_id}"}
    refused = requests.post(f"{base}/", data=json.dumps(raw), headers=headers, timeout=10)
    assert refused.status_code in {400, 422}, refused.text
    messages = diagnostics(refused)
    assert "application/pdf" in messages
    assert "typeCode 34133-9 belongs to classCode 11, not 10" in messages
    assert not DocumentEntry.objects.filter(record__patient=alice, title="CR Hospitalisation").exists()

    bundle = example_bundle()
    content = _into_our_world(bundle, patient_id=patient_id, ins=alice.identifier, names=alice_fhir.names)
    answer = requests.post(f"{base}/", data=json.dumps(bundle), headers=headers, timeout=10)
    assert answer.status_code in {200, 201}, answer.text
    Bundle.model_validate(answer.json())

    searched = requests.get(
        f"{base}/DocumentReference",
        params={
            "patient.identifier": f"urn:oid:{alice.identifier.oid}|{alice.ins}",
            "type": "34133-9",
            "facility": "SA01",
            "setting": "ETABLISSEMENT",
        },
        headers=headers,
        timeout=10,
    ).json()
    [resource] = [e["resource"] for e in searched["entry"]]
    document = DocumentReference.model_validate(resource)
    original = example("DocumentReference-exemple-pdsm-documentreference.json")
    assert document.description == original["description"]
    assert document.content[0].attachment.title == original["content"][0]["attachment"]["title"]
    assert document.category[0].coding[0].code == "11"
    assert resource["context"]["period"]["start"].startswith("2025-04-20T07:00:00")
    assert resource["author"][0]["identifier"]["value"] == "810101201234"
    retrieved = requests.get(
        f"{base}/{resource['content'][0]['attachment']['url']}", headers=headers, timeout=10
    )
    assert retrieved.content == content


def test_our_bundle_builder_round_trips_the_example_metadata():
    """The example, once tied to our world, maps to the same metadata a CDA header states."""
    bundle = copy.deepcopy(example_bundle())
    bundle["entry"][0]["resource"]["subject"] = {"identifier": EXAMPLE_INS}
    bundle["entry"][1]["resource"]["subject"] = {"identifier": EXAMPLE_INS}
    submission = parse_bundle(bundle)
    assert submission.documents[0].patient_id == submission.submission_set.patient_id


@pytest.mark.django_db(transaction=True)
def test_the_simplified_publish_example_is_accepted_end_to_end(alice_fhir, personas):
    """ITI-105: the IG's Simplified Publish DocumentReference, POSTed alone with its bytes."""
    base, headers, patient_id = alice_fhir.base, alice_fhir.headers, alice_fhir.patient_id
    alice = personas.alice
    before = DocumentEntry.objects.count()

    # As published, it is refused with the reasons: its masterIdentifier is not a UUID (so no
    # uniqueId), it carries a PDF, and "Hello World" does not match the declared hash and size.
    raw = {
        **example("DocumentReference-PDSmSimplifiedExample.json"),
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    refused = requests.post(f"{base}/DocumentReference", data=json.dumps(raw), headers=headers, timeout=10)
    assert refused.status_code in {400, 422}, refused.text
    messages = diagnostics(refused)
    assert "uniqueId" in messages
    assert "application/pdf" in messages
    assert DocumentEntry.objects.count() == before

    # Tied to our world: a real UUID, the author named by identifier (the example points to a
    # PractitionerRole it does not contain), and a CDA level 1 carrying the example's values.
    document = copy.deepcopy(raw)
    unique = uuid.uuid4()
    document["masterIdentifier"] = {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{unique}"}
    document["author"] = [
        {
            "identifier": {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "810101201234"},
            "display": "Leclerc Sophie",
        }
    ]
    attachment = document["content"][0]["attachment"]
    cda = leclerc_cda(
        document, ins=alice.identifier, names=alice_fhir.names, body=base64.b64decode(attachment["data"])
    )
    attach(document, cda, inline=True)
    created = requests.post(
        f"{base}/DocumentReference", data=json.dumps(document), headers=headers, timeout=10
    )
    assert created.status_code == 201, created.text
    resource = DocumentReference.model_validate(created.json())
    assert created.headers["Location"] == f"DocumentReference/{resource.id}"
    assert resource.description == raw["description"]
    binary = requests.get(
        f"{base}/{created.json()['content'][0]['attachment']['url']}", headers=headers, timeout=10
    )
    assert binary.content == cda
    # The registry made the submission set: found by ITI-66 for this patient.
    lists = requests.get(
        f"{base}/List",
        params={"patient.identifier": f"urn:oid:{alice.identifier.oid}|{alice.ins}"},
        headers=headers,
        timeout=10,
    ).json()
    assert any(str(resource.id) in json.dumps(e["resource"]) for e in lists.get("entry", []))
