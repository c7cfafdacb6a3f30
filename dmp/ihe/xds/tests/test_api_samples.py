"""Every SOAP action, run once over HTTP with the vendor client, gives the documented samples.

`docs/api/xds-samples.md` is produced by this test (set OPENDMP_WRITE_API_SAMPLES=1); without
the variable the test still runs every transaction and checks that the committed file has a
sample for each action the endpoint serves, so the documentation cannot fall behind.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from lxml import etree

from dmp.common.xml import parse_xml
from dmp.documents.builders import DocumentDraft, author_for, submission_for
from dmp.ihe.xds import hl7v3
from dmp.ihe.xds.queries import StoredQuery
from dmp.ihe.xds.soap import SOAP12
from dmp.ihe.xds.transactions import HANDLERS
from opendmp_client.xds import SoapFault, SoapResponse, XdsClient, registry_objects

pytestmark = pytest.mark.django_db(transaction=True)
SAMPLES = Path(__file__).resolve().parents[4] / "docs" / "api" / "xds-samples.md"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
ARCHIVED = "urn:asip:ci-sis:2010:StatusType:Archived"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"


@dataclass
class Recorder:
    exchanges: list[tuple[str, str, bytes, etree._Element]] = field(default_factory=list)
    title: str = ""


class RecordingClient(XdsClient):
    """The vendor client, keeping each request and answer for the documentation."""

    recorder: Recorder

    def send(self, content_type: str, data: bytes) -> SoapResponse:
        try:
            response = super().send(content_type, data)
        except SoapFault as fault:
            self.recorder.exchanges.append((self.recorder.title, content_type, data, _fault_element(fault)))
            raise
        self.recorder.exchanges.append((self.recorder.title, content_type, data, response.body))
        return response


def _fault_element(fault: SoapFault) -> etree._Element:
    element = etree.Element(f"{{{SOAP12}}}Fault", nsmap={"soap": SOAP12})
    code = etree.SubElement(element, f"{{{SOAP12}}}Code")
    etree.SubElement(code, f"{{{SOAP12}}}Value").text = "soap:Sender"
    etree.SubElement(
        etree.SubElement(code, f"{{{SOAP12}}}Subcode"), f"{{{SOAP12}}}Value"
    ).text = fault.subcode
    etree.SubElement(
        etree.SubElement(element, f"{{{SOAP12}}}Reason"), f"{{{SOAP12}}}Text"
    ).text = fault.reason
    return element


def _abridged(element: etree._Element) -> str:
    """Readable XML: the signed VIHF and long base64 texts shortened, ids kept."""
    element = parse_xml(etree.tostring(element))
    for assertion in element.iter(f"{{{SAML}}}Assertion"):
        for child in list(assertion):
            assertion.remove(child)
        assertion.append(etree.Comment(" signed VIHF: see the Security section of xds.md "))
    for node in element.iter():
        if node.text and len(node.text.strip()) > 120:
            node.text = node.text.strip()[:60] + "…"
    for to in element.iter("{http://www.w3.org/2005/08/addressing}To"):
        to.text = "https://dmp.example/ihe/xds/"
    etree.cleanup_namespaces(element)
    return etree.tostring(element, pretty_print=True, encoding="unicode").strip()


def _request_body(content_type: str, data: bytes) -> str:
    assert "multipart" not in content_type, "samples use inline messages"
    return _abridged(parse_xml(data))


def _run_every_transaction(xds_kit) -> Recorder:
    personas = xds_kit.personas
    recorder = Recorder()

    def client(professional, **claims) -> RecordingClient:
        plain = xds_kit.client(professional, **claims)
        recording = RecordingClient(
            endpoint=plain.endpoint, claims=plain.claims, key=plain.key, certificate=plain.certificate
        )
        recording.recorder = recorder
        return recording

    def step(title: str) -> None:
        recorder.title = title

    bernard = client(personas.dr_bernard)
    bob = personas.bob_traits
    bob_client = client(personas.dr_bernard, patient_ins=f"{bob.ins}^^^&{bob.ins_authority}&ISO^NH")
    step("TD1.1 — create a record")
    bob_client.record_create(
        {
            "birthFamilyName": bob.birth_family_name,
            "givenNames": bob.given_names,
            "birthDate": bob.birth_date.isoformat(),
            "sex": bob.sex,
        },
        consent=True,
        opposes_break_glass=True,
    )
    step("TD0.2 — record status and rights (OpenDMP shape)")
    bernard.record_test()
    step("TD0.2 — record status and rights (HL7v3 PRPA_IN201307UV02)")
    bernard.demographics()
    step("TD0.3 — the caller authorises itself")
    client(personas.dr_petit).dmp("TD0.3", "AuthorisationRequest", action="AJOUT")
    step("TD0.4 — records the caller is authorised on")
    bernard.dmp("TD0.4", "AuthorisedRecordsRequest", order="lastDocument")
    step("TD0.9 — contextual link to the PS portal")
    bernard.dmp("TD0.9", "ContextLinkRequest", page="documents")
    step("TD1.5 — open the patient's web account")
    bob_client.dmp("TD1.5", "WebAccountRequest", otpChannel="EMAIL", otpDestination="bob@example.org")
    step("Administrative update")
    bernard.dmp("AdministrativeUpdate", "AdministrativeUpdateRequest", email="alice.martin@example.org")
    author = author_for(
        person_id=personas.dr_bernard.national_id,
        family_name=personas.dr_bernard.family_name,
        given_name=personas.dr_bernard.given_name,
        structure_id=personas.cabinet.id_nat,
        structure_name=personas.cabinet.name,
    )
    submission = submission_for(
        ins=personas.alice.identifier, author=author, drafts=[DocumentDraft(title="CR de consultation")]
    )
    step("ITI-41 — provide and register a document (TD2.1)")
    assert bernard.provide_and_register(submission, mtom=False).ok
    unique_id = submission.documents[0].unique_id
    step("ITI-18 — FindDocuments (TD3.1)")
    found = registry_objects(
        bernard.stored_query(
            StoredQuery.FIND_DOCUMENTS,
            {
                "$XDSDocumentEntryPatientId": f"'{bernard.claims.patient_ins}'",
                "$XDSDocumentEntryStatus": f"('{APPROVED}')",
                "$XDSDocumentEntryUniqueId": f"('{unique_id}')",
            },
        ),
        "ExtrinsicObject",
    )
    entry = found[0]
    step("ITI-43 — retrieve a document (TD3.2)")
    bernard.retrieve([("1.2.250.1.213.4.1.1.1", unique_id)], mtom=False)
    step("ITI-57 — mask a document to professionals (TD3.3a)")
    bernard.update_document(
        entry, confidentiality=[("N", "2.16.840.1.113883.5.25"), ("MASQUE_PS", "1.2.250.1.213.1.1.4.13")]
    )
    step("ITI-18 — FindDocuments again: the masked version is the current one")
    current = registry_objects(
        bernard.stored_query(
            StoredQuery.FIND_DOCUMENTS,
            {
                "$XDSDocumentEntryPatientId": f"'{bernard.claims.patient_ins}'",
                "$XDSDocumentEntryStatus": f"('{APPROVED}')",
                "$XDSDocumentEntryUniqueId": f"('{unique_id}')",
            },
        ),
        "ExtrinsicObject",
    )[0]
    step("ITI-57 — archive a document (TD3.3d)")
    bernard.update_status(current.get("id", ""), APPROVED, ARCHIVED)
    step("ITI-62 — remove metadata (operator only: a PS is refused)")
    remover = etree.Element(
        "{urn:ihe:iti:rmd:2017}RemoveMetadataRequest", nsmap={"rmd": "urn:ihe:iti:rmd:2017"}
    )
    references = etree.SubElement(remover, "{urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0}ObjectRefList")
    etree.SubElement(
        references, "{urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0}ObjectRef", id=current.get("id", "")
    )
    assert not bernard.call("urn:ihe:iti:2010:DeleteDocumentSet", remover).ok
    step("Traces — the caller's own actions")
    bernard.dmp("Traces", "TracesRequest")
    step("Closure at the patient's request")
    bob_client.dmp(
        "Close", "RecordCloseRequest", reason="FERMETURE_DEMANDE_PATIENT", comment="Demande du patient"
    )
    step("TD1.2 — reactivate a closed record")
    bob_client.dmp("TD1.2", "RecordReactivateRequest", consent="true")
    return recorder


def _action_of(data: bytes) -> str:
    match = re.search(rb"<wsa:Action[^>]*>([^<]+)</wsa:Action>", data)
    assert match, "no wsa:Action"
    return match.group(1).decode()


def render(recorder: Recorder) -> str:
    parts = [
        "# SOAP samples (generated)",
        "",
        "Produced by `dmp/ihe/xds/tests/test_api_samples.py` (run it with",
        "`OPENDMP_WRITE_API_SAMPLES=1`) against a live server with the demo personas. Request bodies",
        "are the full SOAP envelopes sent by `opendmp_client`; the VIHF and long base64 texts are",
        "shortened. Answers show the SOAP body.",
        "",
    ]
    for title, content_type, data, answer in recorder.exchanges:
        parts += [
            f"## {title}",
            "",
            f"Action `{_action_of(data)}`",
            "",
            "```xml",
            _request_body(content_type, data),
            "```",
            "",
            "Answer:",
            "",
            "```xml",
            _abridged(answer),
            "```",
            "",
        ]
    return "\n".join(parts)


def test_every_action_runs_and_is_documented(xds_kit):
    recorder = _run_every_transaction(xds_kit)
    sent = {_action_of(data) for _, _, data, _ in recorder.exchanges}
    assert sent == set(HANDLERS), set(HANDLERS) ^ sent
    assert hl7v3.QUERY_ACTION in sent
    if os.environ.get("OPENDMP_WRITE_API_SAMPLES"):
        SAMPLES.write_text(render(recorder) + "\n", encoding="utf-8")
    documented = set(re.findall(r"^Action `([^`]+)`$", SAMPLES.read_text(encoding="utf-8"), re.MULTILINE))
    assert set(HANDLERS) <= documented, set(HANDLERS) - documented
    # The reference table of xds.md names each action too (AdministrativeUpdate was missing).
    reference = (SAMPLES.parent / "xds.md").read_text(encoding="utf-8")
    tabled = set(re.findall(r"^\| `([^`]+)`", reference, re.MULTILINE))
    assert set(HANDLERS) <= tabled, set(HANDLERS) - tabled
