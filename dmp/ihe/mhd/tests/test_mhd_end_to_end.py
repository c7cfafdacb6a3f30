# mypy: disable-error-code="union-attr,index,arg-type"
"""The FHIR channel over real HTTP with an independent client (fhirpy) and OAuth tokens."""

from __future__ import annotations

import base64
import datetime as dt
import json
import urllib.error

import pytest
import requests
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhirpy import SyncFHIRClient

from dmp.audit.actions import AuditAction
from dmp.audit.models import AuditEvent
from dmp.compat.services import software_register
from dmp.demo.scenarios import author_info
from dmp.documents.builders import DocumentDraft, submission_for
from dmp.documents.metadata import AssociationInput, CodedValue, FolderInput
from dmp.documents.models import AssociationType, DocumentEntry
from dmp.documents.services import submission_register
from dmp.ihe.xds.models import EntryText
from dmp.ihe.xds.queries import StoredQuery
from dmp.ihe.xds.tests.test_xds_end_to_end import find_documents
from opendmp_client.fhir import bundle_for
from opendmp_client.xds import registry_objects

pytestmark = pytest.mark.django_db(transaction=True)
INS_SYSTEM = "urn:oid:1.2.250.1.213.1.4.10"


@pytest.fixture
def fhir(xds_kit):
    def client_for(professional, **claims):
        token = xds_kit.token(professional, **claims)
        return SyncFHIRClient(f"{xds_kit.base_url}/fhir", authorization=f"Bearer {token}"), token

    return client_for


def alice_submission(kit, drafts):
    personas = kit.personas
    return submission_for(
        ins=personas.alice.identifier,
        author=author_info(personas.dr_bernard, personas.cabinet),
        drafts=drafts,
    )


def search(client, **params):
    params.setdefault("patient.identifier", f"{INS_SYSTEM}|285033523810113")
    bundle = client.execute("DocumentReference", method="get", params=params)
    Bundle.model_validate(bundle)
    return [e["resource"] for e in bundle.get("entry", [])]


def test_fhir_submit_search_retrieve_replace_mask_archive_and_agree_with_soap(xds_kit, fhir, personas):
    client, token = fhir(personas.dr_bernard)
    assert personas.alice.ins == "285033523810113"
    submission = alice_submission(
        xds_kit, [DocumentDraft(title="CR FHIR"), DocumentDraft(type_code="11502-2")]
    )
    answer = client.execute("", method="post", data=bundle_for(submission))
    assert answer["type"] == "transaction-response"
    found = search(client)
    assert len(found) == 2
    for resource in found:
        DocumentReference.model_validate(resource)
    # Every search parameter narrows the same result set.
    assert [r["type"]["coding"][0]["code"] for r in search(client, type="11502-2")] == ["11502-2"]
    assert len(search(client, category="10")) == 2
    # A token's system is the code's scheme: the same code in another system is another code.
    assert len(search(client, type="http://loinc.org|11502-2")) == 1
    assert len(search(client, type="|11502-2")) == 1
    assert search(client, type="urn:oid:1.2.3|11502-2") == []
    assert len(search(client, type="http://loinc.org|")) == 2  # any code of that system
    assert search(client, type="urn:oid:1.2.3|") == []
    assert len(search(client, **{"security-label": "urn:oid:2.16.840.1.113883.5.25|N"})) == 2
    assert search(client, **{"security-label": "urn:oid:1.2.3|N"}) == []
    assert len(search(client, facility="SA07", setting="AMBULATOIRE")) == 2
    assert len(search(client, format="urn:asipSante:modelesHorsProfils:2011")) == 2
    assert len(search(client, **{"security-label": "N"})) == 2
    assert search(client, event="nothing") == []
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert len(search(client, date=f"ge{today}")) == 2
    assert search(client, date="lt2000-01-01") == []
    assert len(search(client, period="ge2000-01-01")) == 2
    unique = submission.documents[0].unique_id
    assert len(search(client, identifier=f"urn:ietf:rfc:3986|urn:oid:{unique}")) == 1
    # The logical id, as DocumentReference.identifier shows it (it was read as a uniqueId), and
    # alternatives separated by a comma.
    shown = next(r for r in found if r["masterIdentifier"]["value"] == f"urn:oid:{unique}")["identifier"][0]
    assert len(search(client, identifier=f"{shown['system']}|{shown['value']}")) == 1
    other_unique = submission.documents[1].unique_id
    both = f"urn:ietf:rfc:3986|urn:oid:{unique},urn:ietf:rfc:3986|urn:oid:{other_unique}"
    assert len(search(client, identifier=both)) == 2
    assert search(client, related="nothing") == []
    assert search(client, isArchived="true") == []
    assert len(search(client, _count="1")) == 1
    counted = client.execute(
        "DocumentReference",
        method="get",
        params={"patient.identifier": f"{INS_SYSTEM}|285033523810113", "_count": "0"},
    )
    # No entries and no next link (it repeated the same offset: a client following it looped).
    assert not counted.get("entry")
    assert not [link for link in counted.get("link", []) if link["relation"] == "next"]
    # Byte-identical retrieval (ITI-68), and the same answer on the SOAP channel.
    first = next(r for r in found if r["masterIdentifier"]["value"] == f"urn:oid:{unique}")
    raw = requests.get(
        f"{xds_kit.base_url}/fhir/{first['content'][0]['attachment']['url']}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert raw.content == submission.documents[0].content
    soap = xds_kit.client(personas.dr_bernard)
    soap_entries = registry_objects(
        soap.stored_query(
            StoredQuery.FIND_DOCUMENTS,
            {
                "$XDSDocumentEntryPatientId": f"'{soap.claims.patient_ins}'",
                "$XDSDocumentEntryStatus": "('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')",
            },
        ),
        "ExtrinsicObject",
    )
    assert {e.get("id").removeprefix("urn:uuid:") for e in soap_entries} == {r["id"] for r in found}
    _, soap_docs = soap.retrieve([("1.2.250.1.213.4.1.1.1", unique)])
    assert soap_docs[0].content == raw.content

    # Replacement with relatesTo: the old one becomes superseded.
    replacement = alice_submission(xds_kit, [DocumentDraft(title="CR FHIR v2")])
    client.execute("", method="post", data=bundle_for(replacement, replaces=first["id"]))
    assert [r["id"] for r in search(client, status="superseded")] == [first["id"]]

    # Masking (TD3.3a) by PATCH: the authorised PS stops seeing it, the médecin traitant still does.
    other = next(
        r
        for r in search(client)
        if r["masterIdentifier"]["value"] == f"urn:oid:{submission.documents[1].unique_id}"
    )
    patch = [
        {
            "op": "add",
            "path": "/securityLabel/-",
            "value": {"coding": [{"system": "urn:oid:1.2.250.1.213.1.1.4.13", "code": "MASQUE_PS"}]},
        }
    ]
    patched = requests.patch(
        f"{xds_kit.base_url}/fhir/DocumentReference/{other['id']}",
        data=json.dumps(patch),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json-patch+json"},
        timeout=10,
    )
    assert patched.status_code == 200, patched.text
    moreau, _ = fhir(personas.dr_moreau)
    assert submission.documents[1].unique_id not in {
        r["masterIdentifier"]["value"].removeprefix("urn:oid:") for r in search(moreau)
    }
    assert len(search(client)) == 2

    # Archive (TD3.3d) by PATCH of the isArchived extension.
    current = search(client)[0]
    archive = [{"op": "replace", "path": "/extension/0/valueBoolean", "value": True}]
    archived = requests.patch(
        f"{xds_kit.base_url}/fhir/DocumentReference/{current['id']}",
        data=json.dumps(archive),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json-patch+json"},
        timeout=10,
    )
    assert archived.status_code == 200, archived.text
    assert len(search(client, isArchived="true")) == 1

    # ITI-66 and TD0.2.
    lists = client.execute(
        "List", method="get", params={"patient.identifier": f"{INS_SYSTEM}|285033523810113"}
    )
    assert len(lists["entry"]) == 2
    first_page = client.execute(
        "List", method="get", params={"patient.identifier": f"{INS_SYSTEM}|285033523810113", "_count": "1"}
    )
    (following,) = [link["url"] for link in first_page["link"] if link["relation"] == "next"]
    second_page = requests.get(following, headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    assert {first_page["entry"][0]["resource"]["id"], second_page["entry"][0]["resource"]["id"]} == {
        e["resource"]["id"] for e in lists["entry"]
    }
    patient = client.execute("Patient", method="get", params={"identifier": f"{INS_SYSTEM}|285033523810113"})
    codes = {
        x["url"].rsplit("/", 1)[-1]: x.get("valueCode", x.get("valueBoolean"))
        for x in patient["entry"][0]["resource"]["extension"]
    }
    assert codes["dmp-status"] == "ACTIF"
    assert codes["dmp-medecin-traitant"] is True
    # `patient=` a reference to the Patient this search returned finds the same documents (it
    # was refused: only patient.identifier was read).
    patient_id = patient["entry"][0]["resource"]["id"]
    expected = {r["id"] for r in search(client)}
    assert expected
    for reference in (f"Patient/{patient_id}", patient_id, f"{xds_kit.base_url}/fhir/Patient/{patient_id}"):
        bundle = client.execute("DocumentReference", method="get", params={"patient": reference})
        assert {e["resource"]["id"] for e in bundle["entry"]} == expected, reference
    # Another patient's record and an unknown id get the same answer: the token is bound to Alice.
    answers = set()
    for other in (str(personas.leo.record.public_id), "00000000-0000-0000-0000-000000000000", "nonsense"):
        answer = requests.get(
            f"{xds_kit.base_url}/fhir/DocumentReference",
            params={"patient": f"Patient/{other}"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        answers.add((answer.status_code, answer.json()["issue"][0]["code"]))
    assert len(answers) == 1
    assert next(iter(answers))[0] in {403, 404}


def test_requests_without_a_valid_token_are_refused_and_change_nothing(xds_kit, fhir, personas):
    base = f"{xds_kit.base_url}/fhir"
    submission = alice_submission(xds_kit, [DocumentDraft()])
    before = DocumentEntry.objects.count()
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}):
        answer = requests.post(
            base + "/",
            data=json.dumps(bundle_for(submission)),
            headers={**headers, "Content-Type": "application/fhir+json"},
            timeout=10,
        )
        assert answer.status_code == 401
        OperationOutcome.model_validate(answer.json())
    read_only = xds_kit.token(personas.dr_bernard, scope="system/DocumentReference.read")
    refused = requests.post(
        base + "/",
        data=json.dumps(bundle_for(submission)),
        headers={"Authorization": f"Bearer {read_only}", "Content-Type": "application/fhir+json"},
        timeout=10,
    )
    assert refused.status_code == 403
    assert DocumentEntry.objects.count() == before
    # Changing a document (TD3.3 PATCH) needs the write scope too.
    submission_register(caller=personas.ps(personas.dr_bernard), submission=submission)
    some = DocumentEntry.objects.get(unique_id=submission.documents[0].unique_id)
    masked = requests.patch(
        f"{base}/DocumentReference/{str(some.entry_uuid).removeprefix('urn:uuid:')}",
        data=json.dumps([{"op": "replace", "path": "/status", "value": "entered-in-error"}]),
        headers={"Authorization": f"Bearer {read_only}", "Content-Type": "application/json-patch+json"},
        timeout=10,
    )
    assert masked.status_code == 403
    assert DocumentEntry.objects.get(pk=some.pk).availability_status == some.availability_status
    # A token for another software's homologation number is never issued.
    with pytest.raises(urllib.error.HTTPError):
        xds_kit.token(personas.dr_bernard, homologation="OPENDMP-UNKNOWN")


def test_forbidden_and_malformed_submissions_get_an_operation_outcome(xds_kit, fhir, personas):
    client, token = fhir(personas.dr_bernard)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    base = f"{xds_kit.base_url}/fhir/"
    before = DocumentEntry.objects.count()
    for body in (
        "{not json",
        json.dumps({"resourceType": "Bundle", "type": "batch"}),
        json.dumps({"resourceType": "Patient"}),
    ):
        answer = requests.post(base, data=body, headers=headers, timeout=10)
        assert answer.status_code in {400, 422}
        OperationOutcome.model_validate(answer.json())
    # Wrong patient: the token is bound to Alice, the bundle is for Léo.
    leo = submission_for(
        ins=personas.leo.identifier,
        author=author_info(personas.dr_bernard, personas.cabinet),
        drafts=[DocumentDraft()],
    )
    wrong = requests.post(base, data=json.dumps(bundle_for(leo)), headers=headers, timeout=10)
    assert wrong.status_code == 422
    assert "patient" in wrong.text
    # Two documents under one fullUrl (or none): one was dropped, the answer said both stored.
    two = bundle_for(alice_submission(xds_kit, [DocumentDraft(), DocumentDraft()]))
    documents = [e for e in two["entry"] if e["resource"]["resourceType"] == "DocumentReference"]
    documents[1]["fullUrl"] = documents[0]["fullUrl"]
    shared = requests.post(base, data=json.dumps(two), headers=headers, timeout=10)
    assert shared.status_code == 422
    assert "fullUrl" in shared.text
    del documents[0]["fullUrl"], documents[1]["fullUrl"]
    assert requests.post(base, data=json.dumps(two), headers=headers, timeout=10).status_code == 422
    # The blocked PS finds nothing.
    durand, _ = fhir(personas.dr_durand)
    answer = requests.get(
        base + "DocumentReference",
        params={"patient.identifier": f"{INS_SYSTEM}|285033523810113"},
        headers={"Authorization": f"Bearer {xds_kit.token(personas.dr_durand)}"},
        timeout=10,
    )
    assert answer.status_code == 404
    OperationOutcome.model_validate(answer.json())
    bad_sort = requests.get(
        base + "DocumentReference",
        params={"patient.identifier": f"{INS_SYSTEM}|285033523810113", "_sort": "title"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert bad_sort.status_code == 422
    assert DocumentEntry.objects.count() == before
    del durand, client
    metadata = requests.get(base + "metadata", timeout=10).json()
    assert metadata["resourceType"] == "CapabilityStatement"


def test_the_transaction_response_answers_each_entry_in_its_place(xds_kit, fhir, personas):
    _, token = fhir(personas.dr_bernard)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    base = f"{xds_kit.base_url}/fhir/"
    bundle = bundle_for(alice_submission(xds_kit, [DocumentDraft(), DocumentDraft(title="second")]))
    # Binaries first, then the second document, the List, the first document.
    entries = bundle["entry"]
    kinds = {
        kind: [e for e in entries if e["resource"]["resourceType"] == kind]
        for kind in ("List", "DocumentReference", "Binary")
    }
    first, second = kinds["DocumentReference"]
    bundle["entry"] = [*kinds["Binary"][::-1], second, *kinds["List"], first]
    answer = requests.post(base, data=json.dumps(bundle), headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    locations = [e["response"]["location"] for e in answer.json()["entry"]]
    assert [location.split("/")[0] for location in locations] == [
        "Binary",
        "Binary",
        "DocumentReference",
        "List",
        "DocumentReference",
    ]
    # Each Binary's location is the document whose content it is.
    second_id, first_id = locations[2].split("/")[1], locations[4].split("/")[1]
    assert locations[:2] == [f"Binary/{second_id}", f"Binary/{first_id}"]
    stored = requests.get(f"{base}DocumentReference/{second_id}", headers=headers, timeout=10).json()
    assert stored["content"][0]["attachment"]["title"] == "second"
    # The registry keeps their text in XDS query answers, as for an ITI-41 (ADR 0013).
    registered = DocumentEntry.objects.filter(
        entry_uuid__in=[f"urn:uuid:{first_id}", f"urn:uuid:{second_id}"]
    )
    texts = EntryText.objects.filter(document__in=registered).values_list("entry_uuid", flat=True)
    assert sorted(texts) == sorted([f"urn:uuid:{first_id}", f"urn:uuid:{second_id}"])


def test_a_bundle_with_content_that_would_be_dropped_is_refused(xds_kit, fhir, personas):
    _, token = fhir(personas.dr_bernard)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    base = f"{xds_kit.base_url}/fhir/"
    before = DocumentEntry.objects.count()
    # A resource ITI-65 does not store, and a Binary no DocumentReference points to: both were
    # ignored while the answer reported success.
    extra = bundle_for(alice_submission(xds_kit, [DocumentDraft()]))
    extra["entry"].append(
        {
            "fullUrl": "urn:uuid:0f0e4c8a-45d1-4a3c-9b57-1a1d2e3f4a5b",
            "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "poids"}},
            "request": {"method": "POST", "url": "Observation"},
        }
    )
    answer = requests.post(base, data=json.dumps(extra), headers=headers, timeout=10)
    assert answer.status_code == 422
    assert "Observation" in answer.text
    orphan = bundle_for(alice_submission(xds_kit, [DocumentDraft()]))
    binary = next(e for e in orphan["entry"] if e["resource"]["resourceType"] == "Binary")
    orphan["entry"].append({**binary, "fullUrl": "urn:uuid:5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"})
    answer = requests.post(base, data=json.dumps(orphan), headers=headers, timeout=10)
    assert answer.status_code == 422
    assert "5a4b3c2d" in answer.text
    assert DocumentEntry.objects.count() == before


def test_a_professional_pages_through_all_of_their_own_traces(xds_kit, fhir, personas):
    client, token = fhir(personas.dr_bernard)
    for _ in range(4):
        search(client)
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{xds_kit.base_url}/fhir/AuditEvent?_count=2"
    pages, seen = 0, []
    while url:
        bundle = requests.get(url, headers=headers, timeout=10).json()
        assert len(bundle.get("entry", [])) <= 2
        seen += [e["resource"] for e in bundle.get("entry", [])]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), "")
        pages += 1
    ids = [r["id"] for r in seen]
    # Every event once, newest first, though each page read wrote a new trace meanwhile (an
    # offset would have shown some twice); there were more than the old cap of one page.
    assert len(ids) == len(set(ids))
    assert [r["recorded"] for r in seen] == sorted((r["recorded"] for r in seen), reverse=True)
    queries = [r for r in seen if r["type"]["code"] == str(AuditAction.DOCUMENT_QUERY)]
    assert len(queries) == 4
    assert pages >= 4
    bad = requests.get(f"{xds_kit.base_url}/fhir/AuditEvent?_before=yesterday", headers=headers, timeout=10)
    assert bad.status_code in {400, 422}
    OperationOutcome.model_validate(bad.json())


def test_nul_characters_are_refused_not_stored(xds_kit, fhir, personas):
    """PostgreSQL text cannot hold NUL: the API refuses it up front (found by schemathesis)."""
    _, token = fhir(personas.dr_bernard)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    base = f"{xds_kit.base_url}/fhir"
    before = DocumentEntry.objects.count()
    searched = requests.get(
        f"{base}/DocumentReference",
        params={"patient.identifier": f"{INS_SYSTEM}|285033523810113", "type": "a\x00b"},
        headers=headers,
        timeout=10,
    )
    assert searched.status_code == 400
    OperationOutcome.model_validate(searched.json())
    patched = requests.patch(
        f"{base}/DocumentReference",
        params={"identifier": "urn:ietf:rfc:3986|urn:oid:1.2\x00"},
        data="[]",
        headers={**headers, "Content-Type": "application/json-patch+json"},
        timeout=10,
    )
    assert patched.status_code == 400
    bundle = bundle_for(alice_submission(xds_kit, [DocumentDraft()]))
    bundle["entry"][1]["resource"]["description"] = "Titre\x00caché"
    posted = requests.post(f"{base}/", data=json.dumps(bundle), headers=headers, timeout=10)
    assert posted.status_code in {400, 422}
    assert DocumentEntry.objects.count() == before


def test_text_xml_cannot_carry_is_refused_so_that_soap_answers_stay_possible(xds_kit, fhir, personas):
    """A control character in a FHIR description was stored, then every SOAP query returning the
    document failed with a server error, for the whole record (found by review). Refused on entry
    with the field named, nothing stored; SOAP still answers."""
    _, token = fhir(personas.dr_bernard)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    before = DocumentEntry.objects.count()
    for text in ["Titre\x01caché", "Titre\x1f", "Titre \ud800"]:
        bundle = bundle_for(alice_submission(xds_kit, [DocumentDraft()]))
        bundle["entry"][1]["resource"]["description"] = text
        posted = requests.post(
            f"{xds_kit.base_url}/fhir/", data=json.dumps(bundle), headers=headers, timeout=10
        )
        assert posted.status_code == 422, posted.text
        assert "control character" in posted.text or "unicode" in posted.text
    assert DocumentEntry.objects.count() == before
    assert find_documents(xds_kit.client(personas.dr_bernard)) == []


def test_a_patch_applies_its_labels_and_status_together_or_not_at_all(xds_kit, fhir, personas):
    """Masking is allowed to Dr Bernard, deleting Dr Moreau's document is not: a PATCH asking for
    both is refused whole, and the document keeps its labels and version. A PATCH of labels and
    the archive flag is one new metadata version, as over SOAP."""
    theirs = submission_for(
        ins=personas.alice.identifier,
        author=author_info(personas.dr_moreau, personas.chu),
        drafts=[DocumentDraft()],
    )
    submission_register(caller=personas.ps(personas.dr_moreau, personas.chu), submission=theirs)
    document = DocumentEntry.objects.get(unique_id=theirs.documents[0].unique_id)
    _, token = fhir(personas.dr_bernard)
    url = f"{xds_kit.base_url}/fhir/DocumentReference/{document.entry_uuid.removeprefix('urn:uuid:')}"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json-patch+json"}
    mask = {
        "op": "add",
        "path": "/securityLabel/-",
        "value": {"coding": [{"system": "urn:oid:1.2.250.1.213.1.1.4.13", "code": "MASQUE_PS"}]},
    }
    delete = {"op": "replace", "path": "/status", "value": "entered-in-error"}
    refused = requests.patch(url, data=json.dumps([mask, delete]), headers=headers, timeout=10)
    # Dr Bernard reads the document: he is told why, not that it is unknown.
    assert refused.status_code == 403, refused.text
    (issue,) = OperationOutcome.model_validate(refused.json()).issue
    assert (issue.code, issue.diagnostics) == ("forbidden", "not allowed to change this document: not_author")
    unchanged = DocumentEntry.objects.get(pk=document.pk)
    assert (unchanged.version, unchanged.masked_to_professionals, unchanged.availability_status) == (
        document.version,
        False,
        document.availability_status,
    )
    archive = {"op": "replace", "path": "/extension/0/valueBoolean", "value": True}
    accepted = requests.patch(url, data=json.dumps([mask, archive]), headers=headers, timeout=10)
    assert accepted.status_code == 200, accepted.text
    changed = DocumentEntry.objects.get(pk=document.pk)
    assert (changed.version, changed.masked_to_professionals) == (document.version + 1, True)
    assert changed.availability_status == "urn:asip:ci-sis:2010:StatusType:Archived"
    assert accepted.json()["meta"]["versionId"] == str(document.version + 1)
    # The new version's text in XDS query answers is written with it (ADR 0013).
    assert EntryText.objects.get(document_id=document.pk).entry_uuid == changed.entry_uuid


def test_date_prefixes_follow_the_precision_of_the_value(xds_kit, fhir, personas):
    """le<day> includes that day, gt<day> starts after it, a month or a year covers its span, and
    the last representable day is an answer, not a server error; a JSON Patch path through a
    string is an OperationOutcome too."""
    client, token = fhir(personas.dr_bernard)
    submission = alice_submission(xds_kit, [DocumentDraft()])
    submission_register(caller=personas.ps(personas.dr_bernard), submission=submission)
    registered = DocumentEntry.objects.get(unique_id=submission.documents[0].unique_id).registered_at
    day, month, year = registered.date().isoformat(), registered.strftime("%Y-%m"), registered.strftime("%Y")
    expected = {
        f"le{day}": 1,
        f"ge{day}": 1,
        f"gt{day}": 0,
        f"lt{day}": 0,
        day: 1,
        month: 1,
        year: 1,
        f"gt{int(year) - 1}": 1,
        "9999-12-31": 0,
        "le9999-12-31": 1,
    }
    found = {value: len(search(client, date=value)) for value in expected}
    assert found == expected
    # A repeated token parameter is AND, commas within are OR (they were all OR'd).
    patient = ("patient.identifier", f"{INS_SYSTEM}|285033523810113")
    for labels, count in ((["N,R"], 1), (["N", "R"], 0), (["N", "N"], 1)):
        answer = requests.get(
            f"{xds_kit.base_url}/fhir/DocumentReference",
            params=[patient, *(("security-label", label) for label in labels)],
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert len(answer.json().get("entry", [])) == count, labels
    answer = requests.get(
        f"{xds_kit.base_url}/fhir/DocumentReference",
        params={"patient.identifier": f"{INS_SYSTEM}|285033523810113", "date": "2024-13"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 422
    document = DocumentEntry.objects.get(unique_id=submission.documents[0].unique_id)
    through_a_string = requests.patch(
        f"{xds_kit.base_url}/fhir/DocumentReference/{document.entry_uuid.removeprefix('urn:uuid:')}",
        data=json.dumps([{"op": "test", "path": "/status/x", "value": 1}]),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json-patch+json"},
        timeout=10,
    )
    assert through_a_string.status_code in {400, 422}
    OperationOutcome.model_validate(through_a_string.json())


def test_a_patch_of_what_the_dmp_cannot_change_is_refused_not_ignored(xds_kit, fhir, personas):
    """N to R, or another extension: refused naming the element (as ITI-57 does), where the
    answer was 200 with the change silently dropped."""
    _, token = fhir(personas.dr_bernard)
    submission = alice_submission(xds_kit, [DocumentDraft()])
    submission_register(caller=personas.ps(personas.dr_bernard), submission=submission)
    document = DocumentEntry.objects.get(unique_id=submission.documents[0].unique_id)
    url = f"{xds_kit.base_url}/fhir/DocumentReference/{document.entry_uuid.removeprefix('urn:uuid:')}"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json-patch+json"}
    current = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    position = next(
        i for i, label in enumerate(current["securityLabel"]) if label["coding"][0]["code"] in {"N", "R", "V"}
    )
    restricted = [{"op": "replace", "path": f"/securityLabel/{position}/coding/0/code", "value": "R"}]
    extended = [
        {"op": "add", "path": "/extension/-", "value": {"url": "urn:example:x", "valueBoolean": True}}
    ]
    for patch, element in ((restricted, "securityLabel"), (extended, "extension")):
        answer = requests.patch(url, data=json.dumps(patch), headers=headers, timeout=10)
        assert answer.status_code == 422, answer.text
        assert element in answer.text
    unchanged = DocumentEntry.objects.get(pk=document.pk)
    assert (unchanged.version, unchanged.confidentiality_codes) == (
        document.version,
        document.confidentiality_codes,
    )


def test_every_coding_of_a_security_label_counts_and_a_creation_time_is_required(xds_kit, fhir, personas):
    """N and MASQUE_PS as two codings of one label: the document is masked (only the first coding
    was read, so it was stored visible). No attachment.creation: refused (stored as the year 1)."""
    _, token = fhir(personas.dr_bernard)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    submission = alice_submission(xds_kit, [DocumentDraft()])
    bundle = bundle_for(submission)
    (reference,) = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference"
    ]
    codings = [c for label in reference["securityLabel"] for c in label["coding"]]
    codings.append({"system": "urn:oid:1.2.250.1.213.1.1.4.13", "code": "MASQUE_PS"})
    reference["securityLabel"] = [{"coding": codings}]
    without_creation = json.loads(json.dumps(bundle))
    for entry in without_creation["entry"]:
        if entry["resource"]["resourceType"] == "DocumentReference":
            del entry["resource"]["content"][0]["attachment"]["creation"]
    refused = requests.post(
        f"{xds_kit.base_url}/fhir/", data=json.dumps(without_creation), headers=headers, timeout=10
    )
    assert refused.status_code == 422, refused.text
    assert "creation" in refused.text
    assert not DocumentEntry.objects.filter(unique_id=submission.documents[0].unique_id).exists()
    stored = requests.post(f"{xds_kit.base_url}/fhir/", data=json.dumps(bundle), headers=headers, timeout=10)
    assert stored.status_code == 200, stored.text
    assert DocumentEntry.objects.get(unique_id=submission.documents[0].unique_id).masked_to_professionals


def test_a_consultation_only_software_reads_but_does_not_feed(xds_kit, personas):
    _, number = software_register(vendor="Lecteur", name="Consultation FHIR", profiles=["CONSULTATION"])
    token = xds_kit.token(personas.dr_bernard, homologation=number)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    base = f"{xds_kit.base_url}/fhir/"
    found = requests.get(
        base + "DocumentReference",
        params={"patient.identifier": f"{INS_SYSTEM}|285033523810113"},
        headers=headers,
        timeout=10,
    )
    assert found.status_code == 200
    before = DocumentEntry.objects.count()
    bundle = bundle_for(alice_submission(xds_kit, [DocumentDraft()]))
    refused = requests.post(base, data=json.dumps(bundle), headers=headers, timeout=10)
    assert refused.status_code == 403
    assert "Alimentation" in refused.text
    assert DocumentEntry.objects.count() == before


def test_a_feeding_only_software_reads_its_own_traces(xds_kit, personas):
    """A PS's own traces belong to every homologation profile, as on SOAP."""
    _, number = software_register(vendor="Producteur", name="Alimentation FHIR", profiles=["ALIMENTATION"])
    token = xds_kit.token(personas.dr_bernard, homologation=number)
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{xds_kit.base_url}/fhir/"
    assert requests.get(base + "AuditEvent", headers=headers, timeout=10).status_code == 200
    refused = requests.get(
        base + "DocumentReference",
        params={"patient.identifier": f"{INS_SYSTEM}|285033523810113"},
        headers=headers,
        timeout=10,
    )
    assert refused.status_code == 403


def test_a_patient_search_answers_only_for_the_patient_of_the_token(xds_kit, fhir, personas):
    """TD0.2 over FHIR with a token bound to Alice returned Léo's identity and DMP status (found
    by review). Another patient, registered or not, gets one refusal that tells nothing, and no
    trace is written on their record; Alice's own search still answers."""
    client, token = fhir(personas.dr_bernard)
    bob = personas.bob_traits
    traces = AuditEvent.objects.filter(patient_ins__in=[personas.leo.ins, bob.ins]).count()
    answers = set()
    for system, value in (
        (f"urn:oid:{personas.leo.identifier.oid}", personas.leo.ins),
        (INS_SYSTEM, bob.ins),
    ):
        answer = requests.get(
            f"{xds_kit.base_url}/fhir/Patient",
            params={"identifier": f"{system}|{value}"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        OperationOutcome.model_validate(answer.json())
        assert "Léo" not in answer.text
        assert personas.leo.birth_family_name not in answer.text
        answers.add((answer.status_code, answer.json()["issue"][0]["code"]))
    assert answers == {(403, "forbidden")}
    assert AuditEvent.objects.filter(patient_ins__in=[personas.leo.ins, bob.ins]).count() == traces
    own = client.execute("Patient", method="get", params={"identifier": f"{INS_SYSTEM}|{personas.alice.ins}"})
    assert own["entry"][0]["resource"]["name"][0]["family"] == "Martin"


def test_a_token_naming_no_patient_searches_but_reads_or_changes_no_document(xds_kit, fhir, personas):
    """SOAP needs the VIHF's patient for ITI-41, 43, 57 and TD0.2; a token naming none retrieved,
    submitted and patched (found by review). Refused with 403, nothing changed; the searches,
    which name their patient as ITI-18's Find queries do, and the PS's own traces still answer."""
    submission = alice_submission(xds_kit, [DocumentDraft()])
    submission_register(caller=personas.ps(personas.dr_bernard), submission=submission)
    document = DocumentEntry.objects.get(unique_id=submission.documents[0].unique_id)
    resource_id = document.entry_uuid.removeprefix("urn:uuid:")
    unbound = xds_kit.token(personas.dr_bernard, patient_ins="")
    base = f"{xds_kit.base_url}/fhir"
    auth = {"Authorization": f"Bearer {unbound}"}
    patch_headers = {**auth, "Content-Type": "application/json-patch+json"}
    post_headers = {**auth, "Content-Type": "application/fhir+json"}
    delete = json.dumps([{"op": "replace", "path": "/status", "value": "entered-in-error"}])
    bundle = bundle_for(alice_submission(xds_kit, [DocumentDraft()]))
    simplified = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference"
    )
    before = DocumentEntry.objects.count()
    refused = {
        "ITI-68": requests.get(f"{base}/Binary/{resource_id}", headers=auth, timeout=10),
        "read": requests.get(f"{base}/DocumentReference/{resource_id}", headers=auth, timeout=10),
        "ITI-65": requests.post(f"{base}/", data=json.dumps(bundle), headers=post_headers, timeout=10),
        "ITI-105": requests.post(
            f"{base}/DocumentReference", data=json.dumps(simplified), headers=post_headers, timeout=10
        ),
        "PATCH": requests.patch(
            f"{base}/DocumentReference/{resource_id}", data=delete, headers=patch_headers, timeout=10
        ),
        "PATCH ?identifier": requests.patch(
            f"{base}/DocumentReference",
            params={"identifier": f"urn:ietf:rfc:3986|urn:oid:{document.unique_id}"},
            data=delete,
            headers=patch_headers,
            timeout=10,
        ),
        "TD0.2": requests.get(
            f"{base}/Patient",
            params={"identifier": f"{INS_SYSTEM}|{personas.alice.ins}"},
            headers=auth,
            timeout=10,
        ),
    }
    for name, answer in refused.items():
        assert answer.status_code == 403, (name, answer.text)
        assert answer.json()["issue"][0]["code"] == "forbidden", name
        assert "patient" in answer.text, name
    assert submission.documents[0].content not in refused["ITI-68"].content
    assert DocumentEntry.objects.count() == before
    unchanged = DocumentEntry.objects.get(pk=document.pk)
    assert (unchanged.version, unchanged.availability_status) == (
        document.version,
        document.availability_status,
    )
    found = requests.get(
        f"{base}/DocumentReference",
        params={"patient.identifier": f"{INS_SYSTEM}|{personas.alice.ins}"},
        headers=auth,
        timeout=10,
    )
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [resource_id]
    listed = requests.get(
        f"{base}/List",
        params={"patient.identifier": f"{INS_SYSTEM}|{personas.alice.ins}"},
        headers=auth,
        timeout=10,
    )
    assert len(listed.json()["entry"]) == 1
    assert requests.get(f"{base}/AuditEvent", headers=auth, timeout=10).status_code == 200


def test_reading_another_patients_document_is_not_found_and_leaves_no_read_trace(xds_kit, fhir, personas):
    """A read (or PATCH) of Léo's document with a token bound to Alice was answered 404 after a
    successful metadata read had been traced on Léo's record (found by review): the token's
    patient now confines the lookup, so no trace says Léo's document was read."""
    leo = submission_for(
        ins=personas.leo.identifier,
        author=author_info(personas.dr_bernard, personas.cabinet),
        drafts=[DocumentDraft()],
    )
    submission_register(caller=personas.ps(personas.dr_bernard), submission=leo)
    document = DocumentEntry.objects.get(unique_id=leo.documents[0].unique_id)
    _, token = fhir(personas.dr_bernard)  # bound to Alice
    url = f"{xds_kit.base_url}/fhir/DocumentReference/{document.entry_uuid.removeprefix('urn:uuid:')}"
    traces = AuditEvent.objects.filter(document_unique_id=document.unique_id).count()
    read = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    patched = requests.patch(
        url,
        data=json.dumps([{"op": "replace", "path": "/status", "value": "entered-in-error"}]),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json-patch+json"},
        timeout=10,
    )
    for answer in (read, patched):
        assert answer.status_code == 404, answer.text
        OperationOutcome.model_validate(answer.json())
    assert AuditEvent.objects.filter(document_unique_id=document.unique_id).count() == traces
    unchanged = DocumentEntry.objects.get(pk=document.pk)
    assert (unchanged.version, unchanged.availability_status) == (
        document.version,
        document.availability_status,
    )


A07 = "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
# PDSm4DMP TD3.3a and TD3.3b, verbatim: a DMP code (or N) replaces the first security label.
PDSM_MASK = {
    "MASQUE_PS": "Masqué aux professionnels de santé",
    "INVISIBLE_PATIENT": "Non visible par le patient",
}
PDSM_NORMAL = [
    {
        "op": "replace",
        "path": "/securityLabel/0",
        "value": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                    "code": "N",
                    "display": "normal",
                }
            ]
        },
    }
]


def test_the_pdsm4dmp_td33a_and_td33b_patches_mask_and_unmask(xds_kit, fhir, personas):
    """PDSm's masking patch was refused 422 (N, which it replaces, counted as another label's
    change), and its unmasking patch answered 200 with the document still masked (it replaced N
    and left MASQUE_PS in place) (found by review). A patch that asks for labels the DMP does not
    store is refused, not answered 200."""
    _, token = fhir(personas.dr_bernard)
    submission = alice_submission(xds_kit, [DocumentDraft()])
    submission_register(caller=personas.ps(personas.dr_bernard), submission=submission)
    unique = submission.documents[0].unique_id
    url = f"{xds_kit.base_url}/fhir/DocumentReference"
    params = {"identifier": f"urn:ietf:rfc:3986|urn:oid:{unique}"}
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json-patch+json",
        "Accept": "application/fhir+json",
    }

    def patch(body):
        return requests.patch(url, params=params, data=json.dumps(body), headers=headers, timeout=10)

    flags = {"MASQUE_PS": "masked_to_professionals", "INVISIBLE_PATIENT": "invisible_to_patient"}
    for code, display in PDSM_MASK.items():
        mask = [
            {
                "op": "replace",
                "path": "/securityLabel/0",
                "value": {"coding": [{"system": A07, "code": code, "display": display}]},
            }
        ]
        masked = patch(mask)
        assert masked.status_code == 200, (code, masked.text)
        assert masked.json()["securityLabel"][0]["coding"][0]["code"] == code
        assert getattr(DocumentEntry.objects.get(unique_id=unique), flags[code]) is True
        assert patch(mask).status_code == 200  # already as asked
        unmasked = patch(PDSM_NORMAL)
        assert unmasked.status_code == 200, (code, unmasked.text)
        assert [c["code"] for label in unmasked.json()["securityLabel"] for c in label["coding"]] == ["N"]
        assert getattr(DocumentEntry.objects.get(unique_id=unique), flags[code]) is False
    document = DocumentEntry.objects.get(unique_id=unique)
    assert patch(PDSM_NORMAL).status_code == 200  # already normal: nothing to do, nothing done
    dropped = patch([{"op": "remove", "path": "/securityLabel/0"}])
    assert dropped.status_code == 422, dropped.text
    OperationOutcome.model_validate(dropped.json())
    unchanged = DocumentEntry.objects.get(pk=document.pk)
    assert (unchanged.version, unchanged.confidentiality_codes) == (
        document.version,
        document.confidentiality_codes,
    )


def test_a_second_content_or_an_entry_that_is_not_a_creation_is_refused(xds_kit, fhir, personas):
    """Only content[0] was read and entry.request never: a second document content, or entries
    asking for DELETE or a PUT elsewhere, were dropped or ignored while the answer said 201
    (found by review). Refused, naming the element, nothing stored."""
    _, token = fhir(personas.dr_bernard)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    base = f"{xds_kit.base_url}/fhir/"
    before = DocumentEntry.objects.count()

    def fresh():
        bundle = bundle_for(alice_submission(xds_kit, [DocumentDraft()]))
        document = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference")
        return bundle, document

    two_contents, document = fresh()
    second = json.loads(json.dumps(document["resource"]["content"][0]))
    second["attachment"] = {
        "contentType": "application/pdf",
        "data": base64.b64encode(b"%PDF-1.4 another document").decode(),
        "creation": "2024-01-01T00:00:00Z",
    }
    document["resource"]["content"].append(second)
    answer = requests.post(base, data=json.dumps(two_contents), headers=headers, timeout=10)
    assert answer.status_code == 422, answer.text
    assert "content" in answer.text
    simplified = json.loads(json.dumps(document["resource"]))
    simplified["content"][0]["attachment"]["data"] = base64.b64encode(b"<ClinicalDocument/>").decode()
    del simplified["content"][0]["attachment"]["url"]
    answer = requests.post(
        base + "DocumentReference", data=json.dumps(simplified), headers=headers, timeout=10
    )
    assert answer.status_code == 422, answer.text
    assert "content" in answer.text
    for request in (
        {"method": "DELETE", "url": "DocumentReference/x"},
        {"method": "PUT", "url": "DocumentReference/x"},
        {"method": "POST", "url": "Binary"},
        None,
    ):
        bundle, document = fresh()
        if request is None:
            del document["request"]
        else:
            document["request"] = request
        answer = requests.post(base, data=json.dumps(bundle), headers=headers, timeout=10)
        assert answer.status_code == 422, (request, answer.text)
        assert "request" in answer.text
    assert DocumentEntry.objects.count() == before


def test_date_searches_the_date_shown_and_creation_the_creation_time(xds_kit, fhir, personas):
    """`date` filtered on creationTime while DocumentReference.date shows the registration time
    (found by review): a document written in 2020 and registered today was not found by
    date=ge<the date it shows>. `date` is FHIR's DocumentReference.date, `creation` MHD's
    attachment.creation."""
    client, _ = fhir(personas.dr_bernard)
    written = dt.datetime(2020, 1, 15, 10, 0, tzinfo=dt.UTC)
    submission = alice_submission(xds_kit, [DocumentDraft(creation_time=written)])
    client.execute("", method="post", data=bundle_for(submission))
    (shown,) = search(client)
    assert shown["content"][0]["attachment"]["creation"].startswith("2020-01-15")
    day = shown["date"][:10]
    assert day != "2020-01-15"
    assert len(search(client, date=f"ge{day}")) == 1
    assert len(search(client, date=day)) == 1
    assert search(client, date="2020-01-15") == []
    assert len(search(client, creation="2020-01-15")) == 1
    assert search(client, creation=f"ge{day}") == []
    assert len(search(client, date=f"ge{day}", creation="lt2021")) == 1
    assert search(client, date="lt2021", creation="lt2021") == []
    # _sort=date orders by the same date: registered later, written earlier, shown first.
    older = alice_submission(xds_kit, [DocumentDraft(creation_time=dt.datetime(2019, 5, 1, tzinfo=dt.UTC))])
    client.execute("", method="post", data=bundle_for(older))
    newest_first = [r["masterIdentifier"]["value"] for r in search(client)]
    assert newest_first == [f"urn:oid:{d.unique_id}" for d in (*older.documents, *submission.documents)]
    assert [r["masterIdentifier"]["value"] for r in search(client, _sort="date")] == newest_first[::-1]


def test_the_list_search_applies_its_parameters_and_refuses_unknown_ones(xds_kit, fhir, personas):
    """ITI-66 ignored identifier, code, date, status and designationType (and any unknown
    parameter), answering every List while its self link echoed them (found by review)."""
    client, token = fhir(personas.dr_bernard)
    filed = alice_submission(xds_kit, [DocumentDraft()])
    folder = FolderInput(
        entry_uuid="Folder01",
        unique_id="1.2.250.1.999.7.1",
        patient_id=filed.submission_set.patient_id,
        title="Suivi",
        codes=(CodedValue(code="SUIVI", scheme="1.2.250.1.999.7", display="Suivi"),),
    )
    filed = filed.model_copy(
        update={
            "folders": (folder,),
            "associations": (
                *filed.associations,
                AssociationInput(
                    entry_uuid="F1",
                    association_type=AssociationType.HAS_MEMBER,
                    source="SubmissionSet01",
                    target="Folder01",
                    submission_set_status="Original",
                ),
                AssociationInput(
                    entry_uuid="F2",
                    association_type=AssociationType.HAS_MEMBER,
                    source="Folder01",
                    target=filed.documents[0].entry_uuid,
                ),
            ),
        }
    )
    submission_register(caller=personas.ps(personas.dr_bernard), submission=filed)
    later = alice_submission(xds_kit, [DocumentDraft()])
    client.execute("", method="post", data=bundle_for(later))

    def lists(**params):
        bundle = client.execute(
            "List",
            method="get",
            params={"patient.identifier": f"{INS_SYSTEM}|{personas.alice.ins}", **params},
        )
        return [e["resource"] for e in bundle.get("entry", [])]

    def codes(found):
        return sorted(r["code"]["coding"][0]["code"] for r in found)

    assert codes(lists()) == ["folder", "submissionset", "submissionset"]
    (shown_folder,) = lists(code="folder")
    assert shown_folder["title"] == "Suivi"
    document = DocumentEntry.objects.get(unique_id=filed.documents[0].unique_id)
    assert shown_folder["entry"] == [
        {"item": {"reference": f"DocumentReference/{document.entry_uuid.removeprefix('urn:uuid:')}"}}
    ]
    assert codes(lists(code="submissionset")) == ["submissionset", "submissionset"]
    (by_unique,) = lists(identifier=f"urn:ietf:rfc:3986|urn:oid:{later.submission_set.unique_id}")
    official = next(i for i in by_unique["identifier"] if i["use"] == "official")
    assert [r["id"] for r in lists(identifier=f"urn:ietf:rfc:3986|{official['value']}")] == [by_unique["id"]]
    assert lists(identifier="urn:ietf:rfc:3986|urn:oid:1.2.3.4") == []
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert len(lists(date=f"ge{today}")) == 3
    assert lists(date="ge2999-01-01") == []
    assert len(lists(status="current")) == 3
    assert lists(status="retired") == []
    content_type = later.submission_set.content_type_code
    assert (
        codes(lists(designationType=f"urn:oid:{content_type.scheme}|{content_type.code}"))
        == ["submissionset"] * 2
    )
    assert codes(lists(designationType="SUIVI")) == ["folder"]
    dated = client.execute(
        "List",
        method="get",
        params={"patient.identifier": f"{INS_SYSTEM}|{personas.alice.ins}", "date": "ge2999-01-01"},
    )
    assert "date=ge2999-01-01" in dated["link"][0]["url"]
    for params in ({"nonsense": "x"}, {"code": "other"}, {"status": "draft"}, {"date": "2024-13"}):
        answer = requests.get(
            f"{xds_kit.base_url}/fhir/List",
            params={"patient.identifier": f"{INS_SYSTEM}|{personas.alice.ins}", **params},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert answer.status_code == 422, (params, answer.text)
        OperationOutcome.model_validate(answer.json())


def test_the_capability_statement_gives_each_search_parameter_its_type(xds_kit):
    """Every search parameter was declared a token, the dates included, and List declared none."""
    metadata = requests.get(f"{xds_kit.base_url}/fhir/metadata", timeout=10).json()
    resources = {r["type"]: r for r in metadata["rest"][0]["resource"]}
    types = {p["name"]: p["type"] for p in resources["DocumentReference"]["searchParam"]}
    assert (types["date"], types["period"], types["creation"], types["patient"]) == (
        "date",
        "date",
        "date",
        "reference",
    )
    assert (types["type"], types["identifier"]) == ("token", "token")
    listed = {p["name"]: p["type"] for p in resources["List"]["searchParam"]}
    assert (listed["date"], listed["code"], listed["identifier"]) == ("date", "token", "token")


def test_format_json_is_answered_and_another_format_refused(xds_kit, fhir, personas):
    """`_format=json` was refused as an unsupported search parameter (422), and `_format=xml`
    got the same 422 on a search but JSON on a read (found by review): JSON is answered under any
    of its names, another format is a 406."""
    _, token = fhir(personas.dr_bernard)
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{xds_kit.base_url}/fhir"
    alice = {"patient.identifier": f"{INS_SYSTEM}|{personas.alice.ins}"}
    for value in ("json", "application/fhir+json", "application/json"):
        for path in ("DocumentReference", "List"):
            answer = requests.get(
                f"{base}/{path}", params={**alice, "_format": value}, headers=headers, timeout=10
            )
            assert answer.status_code == 200, (value, path, answer.text)
            assert answer.json()["resourceType"] == "Bundle"
    for path, params in (("DocumentReference", alice), ("List", alice), ("AuditEvent", {}), ("metadata", {})):
        answer = requests.get(
            f"{base}/{path}", params={**params, "_format": "xml"}, headers=headers, timeout=10
        )
        assert answer.status_code == 406, (path, answer.text)
        assert "JSON" in answer.json()["issue"][0]["diagnostics"]


def test_an_unknown_path_or_method_under_fhir_gets_an_operation_outcome(xds_kit, fhir, personas):
    """Django's HTML 404 page and empty 405 answered there (found by review)."""
    _, token = fhir(personas.dr_bernard)
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{xds_kit.base_url}/fhir"
    for method, path, status in (
        ("GET", "/Observation", 404),
        ("GET", "/DocumentReference/x/_history/1", 404),
        ("DELETE", "/DocumentReference/x", 405),
        ("PUT", "/metadata", 405),
        ("DELETE", "/", 405),
    ):
        answer = requests.request(method, base + path, headers=headers, timeout=10)
        assert answer.status_code == status, (method, path, answer.text)
        assert answer.headers["Content-Type"] == "application/fhir+json"
        OperationOutcome.model_validate(answer.json())
        if status == 405:
            assert answer.headers["Allow"]
