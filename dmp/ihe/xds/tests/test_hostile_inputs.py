"""Hostile or broken SOAP requests get a RegistryError or a SOAP fault, never a server error.

The mutation rounds are seeded: the same requests every run, so a failure is reproducible. They
found the oversized and empty classification values of the first test (HTTP 500 before).
"""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
from django.test import Client
from lxml import etree

from dmp.documents.models import DocumentEntry, SubmissionSet
from dmp.ihe.xds import dsg
from dmp.ihe.xds.ebrim import RIM, DocumentEntryScheme, provide_and_register_request, q
from dmp.ihe.xds.queries import StoredQuery
from dmp.ihe.xds.tests.test_dsg import _lot
from dmp.ihe.xds.tests.test_xds_end_to_end import find_documents
from opendmp_client.xds import (
    PROVIDE_AND_REGISTER,
    RETRIEVE,
    STORED_QUERY,
    XdsClient,
    retrieve_request,
    stored_query_request,
)

pytestmark = pytest.mark.django_db(transaction=True)
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
ODD_VALUES = [
    "",
    " ",
    "0",
    "-1",
    "9" * 30,
    "urn:uuid:",
    "'",
    "('a'",
    "éè",
    "^^^&&ISO",
    "20201301",
    "((((",
    "a" * 300,
]


def _classification(body: etree._Element, scheme: str) -> etree._Element:
    for classification in body.iter(q(RIM, "Classification")):
        if classification.get("classificationScheme") == scheme:
            return classification
    raise AssertionError(f"no classification {scheme}")


def _state() -> tuple[int, int]:
    return DocumentEntry.objects.count(), SubmissionSet.objects.count()


def test_empty_or_oversized_classification_values_are_metadata_errors(xds_kit):
    bernard = xds_kit.client(xds_kit.personas.dr_bernard)
    lot = dsg.signed_submission(_lot(xds_kit), key=bernard.key, certificate=bernard.certificate)
    body, _ = provide_and_register_request(lot, mtom=False)
    class_code = _classification(body, DocumentEntryScheme.CLASS_CODE)
    scheme = class_code.find(f"{q(RIM, 'Slot')}/{q(RIM, 'ValueList')}/{q(RIM, 'Value')}")
    assert scheme is not None
    scheme.text = "a" * 65
    _classification(body, DocumentEntryScheme.TYPE_CODE).set("nodeRepresentation", "")
    before = _state()

    response = bernard.call(PROVIDE_AND_REGISTER, body)

    assert not response.ok
    assert {e.code for e in response.errors} == {"XDSRegistryMetadataError"}
    locations = {e.location for e in response.errors}
    assert any(location.endswith("/classCode/scheme") for location in locations), locations
    assert any(location.endswith("/typeCode/code") for location in locations), locations
    assert _state() == before


def _body(
    kind: int, client: XdsClient, rng: random.Random, kit, unique_id: str
) -> tuple[str, etree._Element]:
    if kind == 0:
        lot = dsg.signed_submission(_lot(kit), key=client.key, certificate=client.certificate)
        return PROVIDE_AND_REGISTER, provide_and_register_request(lot, mtom=False)[0]
    if kind == 1:
        patient = f"'{client.claims.patient_ins}'"
        query = rng.choice(
            [
                StoredQuery.FIND_DOCUMENTS,
                StoredQuery.FIND_SUBMISSION_SETS,
                StoredQuery.FIND_FOLDERS,
                StoredQuery.GET_ALL,
                StoredQuery.GET_DOCUMENTS,
                StoredQuery.GET_ASSOCIATIONS,
                StoredQuery.GET_RELATED_DOCUMENTS,
                StoredQuery.GET_SUBMISSION_SET_AND_CONTENTS,
            ]
        )
        params = {
            "$XDSDocumentEntryPatientId": patient,
            "$patientId": patient,
            "$XDSSubmissionSetPatientId": patient,
            "$XDSFolderPatientId": patient,
            "$XDSDocumentEntryStatus": f"('{APPROVED}')",
            "$XDSSubmissionSetStatus": f"('{APPROVED}')",
            "$XDSFolderStatus": f"('{APPROVED}')",
            "$XDSDocumentEntryUniqueId": f"('{unique_id}')",
            "$XDSDocumentEntryCreationTimeFrom": "20200101",
            "$AssociationTypes": "('urn:ihe:iti:2007:AssociationType:RPLC')",
        }
        return STORED_QUERY, stored_query_request(query, params)
    return RETRIEVE, retrieve_request([("1.2.250.1.213.1.1.1", unique_id)])


def _mutate(body: etree._Element, rng: random.Random) -> None:
    elements = list(body.iter(etree.Element))
    for _ in range(rng.randrange(1, 4)):
        element = rng.choice(elements)
        parent = element.getparent()
        choice = rng.random()
        if choice < 0.3 and element.attrib:
            element.set(rng.choice(list(element.attrib)), rng.choice(ODD_VALUES))
        elif choice < 0.5 and element.attrib:
            del element.attrib[rng.choice(list(element.attrib))]
        elif choice < 0.7:
            element.text = rng.choice(ODD_VALUES)
        elif choice < 0.85 and parent is not None:
            parent.remove(element)
        elif parent is not None:
            parent.append(copy.deepcopy(element))


def test_mutated_requests_never_cause_a_server_error(xds_kit):
    """Signed requests whose bodies are mutated (values, missing or doubled elements), then raw
    messages whose bytes are flipped, cut or repeated: every answer is below 500. The test client
    re-raises an unhandled exception, so a crash fails with its traceback."""
    bernard = xds_kit.client(xds_kit.personas.dr_bernard)
    first = dsg.signed_submission(_lot(xds_kit), key=bernard.key, certificate=bernard.certificate)
    assert bernard.provide_and_register(first, sign_lot=False).ok
    unique_id = first.documents[0].unique_id
    web = Client()
    rng = random.Random(20261123)
    for index in range(150):
        action, body = _body(index % 3, bernard, rng, xds_kit, unique_id)
        _mutate(body, rng)
        content_type, data = bernard.prepare(action, body, mtom=action == RETRIEVE)
        answer = web.generic("POST", "/ihe/xds/", data, content_type=content_type)
        assert answer.status_code < 500, (index, action, answer.content[:500])
    for index in range(150):
        action, body = _body(index % 3, bernard, rng, xds_kit, unique_id)
        content_type, data = bernard.prepare(action, body, mtom=index % 2 == 0)
        raw = bytearray(data)
        start = rng.randrange(len(raw))
        end = min(len(raw), start + rng.randrange(1, 300))
        cut = rng.randrange(3)
        if cut == 0:
            for _ in range(rng.randrange(1, 6)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
        elif cut == 1:
            del raw[start:end]
        else:
            raw[end:end] = raw[start:end]
        answer = web.generic("POST", "/ihe/xds/", bytes(raw), content_type=content_type)
        assert answer.status_code < 500, (index, action, answer.content[:500])
    # The Content-Type header too (a non-ASCII boundary raised UnicodeEncodeError: HTTP 500).
    _, data = bernard.prepare(*_body(2, bernard, rng, xds_kit, unique_id), mtom=True)
    for header in (
        'multipart/related; boundary="fronti\u00e8re"; type="application/xop+xml"',
        'multipart/related; boundary=""; type="application/xop+xml"',
        "multipart/related",
        "application/soap+xml; charset=\u00e9\u00e9",
        "text/\u00e9",
    ):
        answer = web.generic("POST", "/ihe/xds/", data, content_type=header)
        assert 400 <= answer.status_code < 500, (header, answer.content[:300])


class _Capture(XdsClient):
    """The vendor client with `call` keeping each request body instead of sending it."""

    bodies: list[tuple[str, etree._Element]]

    def call(self, action: str, body: etree._Element, **_options: object) -> Any:
        self.bodies.append((action, body))
        return None


def test_mutated_updates_and_dmp_transactions_never_cause_a_server_error(xds_kit):
    """ITI-57 (new version, status change) and the DMP transactions, built by the vendor client
    and mutated: every answer is below 500. The unmutated TD0.4 with a date found a naive-time
    bug (see test_td04_lists_authorised_records_since_a_date)."""
    bernard = xds_kit.client(xds_kit.personas.dr_bernard)
    lot = dsg.signed_submission(_lot(xds_kit), key=bernard.key, certificate=bernard.certificate)
    assert bernard.provide_and_register(lot, sign_lot=False).ok
    entry = find_documents(bernard)[0]
    capture = _Capture(
        endpoint=bernard.endpoint, claims=bernard.claims, key=bernard.key, certificate=bernard.certificate
    )
    web = Client()
    rng = random.Random(1123)
    for _ in range(8):
        capture.bodies = []
        capture.update_document(
            copy.deepcopy(entry), confidentiality=[("MASQUE_PS", "1.2.250.1.213.1.1.4.13")]
        )
        capture.update_status(entry.get("id", ""), APPROVED, "urn:asip:ci-sis:2010:StatusType:Archived")
        capture.dmp("TD0.2", "RecordTestRequest")
        capture.dmp("TD0.3", "AuthorisationRequest", action="AJOUT")
        capture.dmp("TD0.4", "AuthorisedRecordsRequest", since="2020-01-01")
        capture.dmp("TD0.9", "ContextLinkRequest", page="record")
        capture.dmp("TD1.5", "WebAccountRequest", otpChannel="EMAIL", otpDestination="alice@example.org")
        capture.dmp("Traces", "TracesRequest")
        capture.dmp("AdministrativeUpdate", "AdministrativeUpdateRequest", email="alice@example.org")
        capture.record_create(
            {"birthFamilyName": "MARTIN", "givenNames": "Alice", "birthDate": "1985-03-12", "sex": "F"},
            consent=True,
        )
        for action, body in capture.bodies:
            _mutate(body, rng)
            content_type, data = bernard.prepare(action, body)
            answer = web.generic("POST", "/ihe/xds/", data, content_type=content_type)
            assert answer.status_code < 500, (action, answer.content[:500])
