"""Mutated ITI-65 Bundles and PATCHes get an OperationOutcome, never a server error.

Seeded, so reproducible. Before the fixes they gave HTTP 500 in three ways: fhir.resources itself
raising TypeError or KeyError on an odd resourceType, a value the FHIR model accepts but the XDS
metadata cannot carry (an empty or oversized code), and a PATCH turning securityLabel or
extension into something that is not a list of objects.
"""

from __future__ import annotations

import base64
import copy
import json
import random
from typing import Any

import pytest
from django.test import Client

from dmp.documents.builders import DocumentDraft
from dmp.documents.models import DocumentEntry, SubmissionSet
from dmp.ihe.mhd.tests.test_mhd_end_to_end import alice_submission
from opendmp_client.fhir import bundle_for

pytestmark = pytest.mark.django_db(transaction=True)
ODD_VALUES: list[Any] = [
    "",
    " ",
    0,
    -1,
    1.5,
    True,
    None,
    [],
    {},
    "a" * 300,
    "urn:oid:",
    "2020-13-01",
    "#x",
    "é",
]
ARCHIVED = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-isArchived"


def _mutate(node: dict[str, Any], rng: random.Random) -> None:
    """One change at a random place of the JSON tree: an odd value, a removal, a repeat, a wrap."""
    places: list[tuple[Any, Any]] = []

    def walk(value: Any) -> None:
        children = (
            value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        )
        for key, child in children:
            places.append((value, key))
            walk(child)

    walk(node)
    parent, key = rng.choice(places)
    choice = rng.random()
    if choice < 0.4:
        parent[key] = copy.deepcopy(rng.choice(ODD_VALUES))
    elif choice < 0.7:
        del parent[key]
    elif choice < 0.85 and isinstance(parent, list):
        parent.append(copy.deepcopy(parent[key]))
    else:
        parent[key] = [parent[key]]


def test_mutated_bundles_get_an_operation_outcome(xds_kit):
    token = xds_kit.token(xds_kit.personas.dr_bernard)
    web = Client()
    rng = random.Random(65)
    before = DocumentEntry.objects.count(), SubmissionSet.objects.count()
    accepted = 0
    for _ in range(200):
        bundle = bundle_for(alice_submission(xds_kit, [DocumentDraft()]))
        for _ in range(rng.randrange(1, 4)):
            _mutate(bundle, rng)
        answer = web.post(
            "/fhir/",
            data=json.dumps(bundle),
            content_type="application/fhir+json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        assert answer.status_code < 500, answer.content[:500]
        if answer.status_code == 200:
            accepted += 1
        else:
            assert answer.json()["resourceType"] == "OperationOutcome"
    # A refused Bundle stores nothing: only the accepted ones (harmless mutations) added rows.
    assert DocumentEntry.objects.count() == before[0] + accepted
    assert SubmissionSet.objects.count() == before[1] + accepted


def test_mutated_patches_get_an_operation_outcome(xds_kit):
    token = xds_kit.token(xds_kit.personas.dr_bernard)
    web = Client()
    bundle = bundle_for(alice_submission(xds_kit, [DocumentDraft()]))
    created = web.post(
        "/fhir/",
        data=json.dumps(bundle),
        content_type="application/fhir+json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert created.status_code == 200, created.content[:500]
    rng = random.Random(57)
    values = [*ODD_VALUES, [{"coding": [{"code": "MASQUE_PS"}]}], [{"url": ARCHIVED, "valueBoolean": "yes"}]]
    paths = ["/securityLabel", "/securityLabel/0", "/securityLabel/-", "/securityLabel/0/coding/0/code"]
    paths += ["/extension", "/extension/0", "/extension/-", "/status", "/meta", "/x"]
    for _ in range(150):
        latest = DocumentEntry.objects.order_by("-pk").first()
        assert latest is not None
        operation = {"op": rng.choice(["add", "remove", "replace", "test"]), "path": rng.choice(paths)}
        operation["value"] = copy.deepcopy(rng.choice(values))
        answer = web.patch(
            f"/fhir/DocumentReference/{latest.entry_uuid.removeprefix('urn:uuid:')}",
            data=json.dumps([operation]),
            content_type="application/json-patch+json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        assert answer.status_code < 500, (operation, answer.content[:500])


def test_deep_json_and_dates_outside_the_utc_years_get_an_operation_outcome(xds_kit):
    """Deeply nested JSON (RecursionError while parsing) and year-1 instants with a positive
    offset (OverflowError: the year 0 in UTC) gave HTTP 500 (found by review)."""
    token = xds_kit.token(xds_kit.personas.dr_bernard)
    web = Client(raise_request_exception=False)
    bearer = f"Bearer {token}"
    bundle = bundle_for(alice_submission(xds_kit, [DocumentDraft()]))
    assert (
        web.post(
            "/fhir/", json.dumps(bundle), content_type="application/fhir+json", HTTP_AUTHORIZATION=bearer
        ).status_code
        == 200
    )
    document = DocumentEntry.objects.get()
    resource = f"/fhir/DocumentReference/{document.entry_uuid.removeprefix('urn:uuid:')}"
    before = DocumentEntry.objects.count(), document.version
    # Deeper than the parser can go, and parseable but deeper than any resource or patch nests.
    for body in ("[" * 5000 + "]" * 5000, "[" * 80 + "]" * 80, '{"a":' * 80 + "{}" + "}" * 80):
        for method, path, content_type in (
            ("POST", "/fhir/", "application/fhir+json"),
            ("POST", "/fhir/DocumentReference", "application/fhir+json"),
            ("PATCH", resource, "application/json-patch+json"),
        ):
            answer = web.generic(method, path, body, content_type=content_type, HTTP_AUTHORIZATION=bearer)
            assert answer.status_code in {400, 422}, (method, path, answer.content[:300])
            assert answer.json()["resourceType"] == "OperationOutcome"
            assert "nests" in answer.json()["issue"][0]["diagnostics"]
    assert (DocumentEntry.objects.count(), DocumentEntry.objects.get().version) == before
    alice = "urn:oid:1.2.250.1.213.1.4.10|285033523810113"
    for name, value in (
        ("date", "ge0001-01-01T00:00:00+14:00"),
        ("creation", "0001-01-01T05:00:00+10:00"),
        ("period", "lt0001-01-01T00:00:00+01:00"),
    ):
        answer = web.get(
            "/fhir/DocumentReference", {"patient.identifier": alice, name: value}, HTTP_AUTHORIZATION=bearer
        )
        assert answer.status_code == 422, (name, value, answer.content[:300])
        assert answer.json()["issue"][0]["diagnostics"].startswith(f"{name}:")
    for cursor in (
        "0001-01-01T00:00:00+14:00~1",
        "2024-01-01T00:00:00~5",
        "2024-01-01T00:00:00+00:00~" + "9" * 23,
    ):
        answer = web.get("/fhir/AuditEvent", {"_before": cursor}, HTTP_AUTHORIZATION=bearer)
        assert answer.status_code == 422, (cursor, answer.content[:300])
        assert answer.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("declared", ["@@@@", "AAAA AAAA", "A", base64.b64encode(b"x" * 32).decode()])
def test_an_attachment_hash_that_is_not_a_sha1_is_refused(xds_kit, declared):
    """ "@@@@" decoded leniently to no bytes at all, and the integrity check was skipped: the
    document was stored with a hash nobody checked (found by review)."""
    token = xds_kit.token(xds_kit.personas.dr_bernard)
    bundle = bundle_for(alice_submission(xds_kit, [DocumentDraft()]))
    document = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference"
    )
    document["content"][0]["attachment"]["hash"] = declared
    answer = Client().post(
        "/fhir/",
        json.dumps(bundle),
        content_type="application/fhir+json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert answer.status_code == 422, answer.content[:300]
    assert "attachment.hash" in answer.json()["issue"][0]["diagnostics"]
    assert not DocumentEntry.objects.exists()


def test_a_body_larger_than_the_server_accepts_gets_an_operation_outcome(xds_kit, settings):
    """Django's own HTML 400 answered an oversized body (found by review): 413 OperationOutcome."""
    token = xds_kit.token(xds_kit.personas.dr_bernard)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    body = json.dumps(bundle_for(alice_submission(xds_kit, [DocumentDraft(paragraphs=("x" * 8000,))])))
    web = Client(raise_request_exception=False)
    for method, path, content_type in (
        ("POST", "/fhir/", "application/fhir+json"),
        ("POST", "/fhir/DocumentReference", "application/fhir+json"),
        ("PATCH", "/fhir/DocumentReference/x", "application/json-patch+json"),
    ):
        answer = web.generic(
            method, path, body, content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {token}"
        )
        assert answer.status_code == 413, (method, path, answer.content[:300])
        assert answer["Content-Type"] == "application/fhir+json"
        assert answer.json()["issue"][0]["code"] == "too-long"
    assert not DocumentEntry.objects.exists()
