"""The SOAP channel over real HTTP, driven by the vendor client library with signed VIHFs."""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime as dt
import re
import urllib.error
import zlib
from dataclasses import replace

import pytest
from lxml import etree

from dmp.access.actors import Channel
from dmp.audit.actions import AuditAction
from dmp.audit.models import AuditEvent
from dmp.compat.services import software_register
from dmp.demo.scenarios import author_info
from dmp.documents.builders import DocumentDraft, author_for, submission_for
from dmp.documents.metadata import SubmissionInput
from dmp.documents.models import DocumentEntry, DocumentEntryVersion
from dmp.ihe.xds.ebrim import RIM, DocumentEntryScheme, q
from dmp.ihe.xds.queries import StoredQuery
from dmp.records.models import Record
from opendmp_client.vihf import SAML, build_assertion, sign_assertion
from opendmp_client.xds import DMP_NS, SoapFault, registry_objects

pytestmark = pytest.mark.django_db(transaction=True)

APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DS = "http://www.w3.org/2000/09/xmldsig#"
DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"


def alice_submission(kit, drafts, replaces=None) -> SubmissionInput:
    personas = kit.personas
    return submission_for(
        ins=personas.alice.identifier,
        author=author_info(personas.dr_bernard, personas.cabinet),
        drafts=drafts,
        replaces=replaces,
    )


def find_documents(client, statuses=(APPROVED,), **params):
    response = client.stored_query(
        StoredQuery.FIND_DOCUMENTS,
        {
            "$XDSDocumentEntryPatientId": f"'{client.claims.patient_ins}'",
            "$XDSDocumentEntryStatus": "(" + ",".join(f"'{s}'" for s in statuses) + ")",
            **params,
        },
    )
    assert response.ok, response.errors
    return registry_objects(response, "ExtrinsicObject")


def unique_id_of(entry):
    for ident in entry.findall(q(RIM, "ExternalIdentifier")):
        if ident.get("identificationScheme") == DocumentEntryScheme.UNIQUE_ID:
            return ident.get("value")
    raise AssertionError("no uniqueId")


def test_a_signed_client_feeds_queries_retrieves_replaces_and_masks(xds_kit):
    personas = xds_kit.personas
    bernard = xds_kit.client(personas.dr_bernard)
    inline = alice_submission(xds_kit, [DocumentDraft(title="Compte rendu inline")])
    mtom = alice_submission(
        xds_kit, [DocumentDraft(title="Compte rendu MTOM"), DocumentDraft(title="Lettre")]
    )
    assert bernard.provide_and_register(inline, mtom=False).ok
    assert bernard.provide_and_register(mtom, mtom=True).ok

    entries = find_documents(bernard)
    assert len(entries) == 3
    sent = {d.unique_id: d.content for d in (*inline.documents, *mtom.documents)}
    repository = entries[0].find(f"{q(RIM, 'Slot')}[@name='repositoryUniqueId']//{q(RIM, 'Value')}").text
    for use_mtom in (True, False):
        response, documents = bernard.retrieve([(repository, uid) for uid in sent], mtom=use_mtom)
        assert response.ok
        assert {d.unique_id: d.content for d in documents} == sent

    # Replacement (RPLC): the old entry becomes Deprecated, the new one is Approved.
    old = next(e for e in entries if unique_id_of(e) == inline.documents[0].unique_id)
    replacement = alice_submission(
        xds_kit, [DocumentDraft(title="Compte rendu v2")], replaces={0: old.get("id")}
    )
    assert bernard.provide_and_register(replacement).ok
    statuses = {unique_id_of(e): e.get("status") for e in find_documents(bernard, (APPROVED, DEPRECATED))}
    assert statuses[inline.documents[0].unique_id] == DEPRECATED
    assert statuses[replacement.documents[0].unique_id] == APPROVED

    # Masking (TD3.3a) by ITI-57: the authorised PS no longer sees it, the médecin traitant does.
    moreau = xds_kit.client(personas.dr_moreau)
    assert len(find_documents(moreau)) == 3
    target = next(e for e in find_documents(bernard) if unique_id_of(e) == mtom.documents[1].unique_id)
    masked = bernard.update_document(
        target, confidentiality=[("N", "2.16.840.1.113883.5.25"), ("MASQUE_PS", "1.2.250.1.213.1.1.4.13")]
    )
    assert masked.ok, masked.errors
    assert mtom.documents[1].unique_id not in {unique_id_of(e) for e in find_documents(moreau)}
    assert mtom.documents[1].unique_id in {unique_id_of(e) for e in find_documents(bernard)}
    _, hidden = moreau.retrieve([(repository, mtom.documents[1].unique_id)])
    assert hidden == []

    # Archive (TD3.3d) by status update.
    archived_entry = next(
        e for e in find_documents(bernard) if unique_id_of(e) == mtom.documents[0].unique_id
    )
    assert bernard.update_status(
        archived_entry.get("id"), APPROVED, "urn:asip:ci-sis:2010:StatusType:Archived"
    ).ok
    assert mtom.documents[0].unique_id not in {unique_id_of(e) for e in find_documents(bernard)}

    # The trail: every step is in the audit, and the PS can list its own actions.
    traces = bernard.dmp("Traces", "TracesRequest")
    assert len(traces.body.findall(f"{{{DMP_NS}}}Trace")) >= 8
    assert AuditEvent.objects.filter(actor_id=personas.dr_bernard.national_id, channel="xds").count() >= 8


def test_every_stored_query_answers_with_what_the_caller_may_see(xds_kit):
    personas = xds_kit.personas
    bernard = xds_kit.client(personas.dr_bernard)
    submission = alice_submission(xds_kit, [DocumentDraft(), DocumentDraft(type_code="11502-2")])
    assert bernard.provide_and_register(submission).ok
    patient = f"'{bernard.claims.patient_ins}'"
    approved = f"('{APPROVED}')"
    entries = find_documents(bernard)
    entry_uuids = [e.get("id") for e in entries]
    subset_uid = submission.submission_set.unique_id

    def run(query, params, return_type="LeafClass"):
        response = bernard.stored_query(query, params, return_type=return_type)
        assert response.ok, response.errors
        return response

    def count(response, tag):
        return len(registry_objects(response, tag))

    assert (
        count(
            run(
                StoredQuery.FIND_DOCUMENTS,
                {"$XDSDocumentEntryPatientId": patient, "$XDSDocumentEntryStatus": approved},
                "ObjectRef",
            ),
            "ObjectRef",
        )
        == 2
    )
    assert (
        count(
            run(
                StoredQuery.FIND_DOCUMENTS,
                {
                    "$XDSDocumentEntryPatientId": patient,
                    "$XDSDocumentEntryStatus": approved,
                    "$XDSDocumentEntryTypeCode": "('11502-2^^2.16.840.1.113883.6.1')",
                },
            ),
            "ExtrinsicObject",
        )
        == 1
    )
    # A code is matched in the scheme the request names (the same code may mean another thing in
    # another scheme), or in any scheme when it names none; several slots of a code list are ANDed.
    for params, expected in (
        ({"$XDSDocumentEntryTypeCode": "('11502-2^^1.2.250.1.213.1.1.4.12')"}, 0),
        ({"$XDSDocumentEntryTypeCode": "('11502-2')"}, 1),
        ({"$XDSDocumentEntryTypeCode": "('11502-2^^1.2.3','11502-2^^2.16.840.1.113883.6.1')"}, 1),
        ({"$XDSDocumentEntryClassCode": "('10^^1.2.250.1.213.1.1.4.1')"}, 2),
        ({"$XDSDocumentEntryClassCode": "('10^^1.2.3')"}, 0),
        ({"$XDSDocumentEntryConfidentialityCode": "('N^^2.16.840.1.113883.5.25')"}, 2),
        ({"$XDSDocumentEntryConfidentialityCode": "('N^^1.2.250.1.213.1.1.4.13')"}, 0),
    ):
        found = run(
            StoredQuery.FIND_DOCUMENTS,
            {"$XDSDocumentEntryPatientId": patient, "$XDSDocumentEntryStatus": approved, **params},
        )
        assert count(found, "ExtrinsicObject") == expected, params
    assert (
        count(
            run(
                StoredQuery.FIND_SUBMISSION_SETS,
                {"$XDSSubmissionSetPatientId": patient, "$XDSSubmissionSetStatus": approved},
            ),
            "RegistryPackage",
        )
        == 1
    )
    # The status and author parameters filter (they were read, then ignored).
    family = personas.dr_bernard.family_name.upper()
    for status, author, expected in (
        (f"('{DEPRECATED}')", None, 0),
        (approved, f"%^{family}^%", 1),
        (approved, "%^NOBODY^%", 0),
        (approved, f"{family[0]}_{family[2:]}%", 1),
    ):
        params = {"$XDSSubmissionSetPatientId": patient, "$XDSSubmissionSetStatus": status}
        if author:
            params["$XDSSubmissionSetAuthorPerson"] = f"('{author}')"
        assert count(run(StoredQuery.FIND_SUBMISSION_SETS, params), "RegistryPackage") == expected, params
    assert (
        count(
            run(StoredQuery.FIND_FOLDERS, {"$XDSFolderPatientId": patient, "$XDSFolderStatus": approved}),
            "RegistryPackage",
        )
        == 0
    )
    everything = run(StoredQuery.GET_ALL, {"$patientId": patient, "$XDSDocumentEntryStatus": approved})
    assert (
        count(everything, "ExtrinsicObject"),
        count(everything, "RegistryPackage"),
        count(everything, "Association"),
    ) == (2, 1, 2)
    assert (
        count(
            run(StoredQuery.GET_DOCUMENTS, {"$XDSDocumentEntryEntryUUID": f"('{entry_uuids[0]}')"}),
            "ExtrinsicObject",
        )
        == 1
    )
    both = run(
        StoredQuery.GET_DOCUMENTS_AND_ASSOCIATIONS,
        {"$XDSDocumentEntryEntryUUID": f"('{entry_uuids[0]}','{entry_uuids[1]}')"},
    )
    assert (count(both, "ExtrinsicObject"), count(both, "Association")) == (2, 2)
    assert count(run(StoredQuery.GET_ASSOCIATIONS, {"$uuid": f"('{entry_uuids[0]}')"}), "Association") == 1
    subsets = run(StoredQuery.GET_SUBMISSION_SETS, {"$uuid": f"('{entry_uuids[0]}')"})
    assert (count(subsets, "RegistryPackage"), count(subsets, "Association")) == (1, 1)
    contents = run(
        StoredQuery.GET_SUBMISSION_SET_AND_CONTENTS, {"$XDSSubmissionSetUniqueId": f"'{subset_uid}'"}
    )
    assert (
        count(contents, "ExtrinsicObject"),
        count(contents, "RegistryPackage"),
        count(contents, "Association"),
    ) == (2, 1, 2)
    assert (
        count(
            run(
                StoredQuery.GET_FOLDERS,
                {"$XDSFolderEntryUUID": "('urn:uuid:00000000-0000-0000-0000-000000000000')"},
            ),
            "RegistryPackage",
        )
        == 0
    )
    assert (
        count(run(StoredQuery.GET_FOLDER_AND_CONTENTS, {"$XDSFolderUniqueId": "'1.2.3'"}), "RegistryPackage")
        == 0
    )
    assert (
        count(
            run(StoredQuery.GET_FOLDERS_FOR_DOCUMENT, {"$XDSDocumentEntryEntryUUID": f"'{entry_uuids[0]}'"}),
            "RegistryPackage",
        )
        == 0
    )
    related = run(
        StoredQuery.GET_RELATED_DOCUMENTS,
        {
            "$XDSDocumentEntryEntryUUID": f"'{entry_uuids[0]}'",
            "$AssociationTypes": "('urn:ihe:iti:2007:AssociationType:RPLC')",
        },
    )
    assert count(related, "ExtrinsicObject") == 0
    unknown = bernard.stored_query("urn:uuid:00000000-0000-0000-0000-000000000001", {})
    assert not unknown.ok
    assert unknown.errors[0].code == "XDSUnknownStoredQuery"


def test_td11_creates_a_record_and_td02_reports_it(xds_kit):
    personas = xds_kit.personas
    bob = personas.bob_traits
    bob_cx = f"{bob.ins}^^^&{bob.ins_authority}&ISO^NH"
    bernard = xds_kit.client(personas.dr_bernard, patient_ins=bob_cx)
    assert bernard.record_test().body.get("status") == "INEXISTANT"
    traits = {
        "birthFamilyName": bob.birth_family_name,
        "givenNames": bob.given_names,
        "birthDate": bob.birth_date.isoformat(),
        "sex": bob.sex,
    }
    with pytest.raises(SoapFault) as refused:
        bernard.record_create(traits, consent=False)
    assert "consent" in refused.value.reason
    assert not Record.objects.filter(patient__ins=bob.ins).exists()
    created = bernard.record_create(traits, consent=True, opposes_break_glass=True)
    assert created.body.get("status") == "ACTIF"
    report = bernard.record_test().body
    assert (report.get("status"), report.get("authorisation"), report.get("opposesBreakGlass")) == (
        "ACTIF",
        "VALIDE",
        "true",
    )


def _documents_now():
    return DocumentEntry.objects.count()


def test_forbidden_and_hostile_calls_fail_and_change_nothing(xds_kit):
    personas = xds_kit.personas
    bernard = xds_kit.client(personas.dr_bernard)
    submission = alice_submission(xds_kit, [DocumentDraft()])
    before = _documents_now()

    # Unsigned VIHF.
    unsigned = build_assertion(bernard.claims, certificate=bernard.certificate)
    for signature in unsigned.findall("{http://www.w3.org/2000/09/xmldsig#}Signature"):
        unsigned.remove(signature)
    with pytest.raises(SoapFault, match="signature"):
        bernard.call("urn:ihe:iti:2007:RegistryStoredQuery", etree.Element("x"), security=unsigned)

    # Tampered: the subject changed after signing.
    tampered = bernard.vihf()
    tampered.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID").text = personas.dr_moreau.national_id
    with pytest.raises(SoapFault, match="signature does not verify"):
        bernard.call("urn:ihe:iti:2007:RegistryStoredQuery", etree.Element("x"), security=tampered)

    # A signature the XML-DSig schema refuses: a SOAP fault, not a server error.
    malformed = bernard.vihf()
    etree.SubElement(malformed.find(f"{{{DS}}}Signature/{{{DS}}}SignedInfo"), f"{{{DS}}}Unexpected")
    with pytest.raises(SoapFault, match="signature does not verify"):
        bernard.call("urn:ihe:iti:2007:RegistryStoredQuery", etree.Element("x"), security=malformed)

    # A key value signxml cannot decode (an empty RSA Modulus, valid for the schema): it raised
    # a TypeError, a server error.
    undecodable = bernard.vihf()
    key_info = undecodable.find(f"{{{DS}}}Signature/{{{DS}}}KeyInfo")
    key_value = etree.Element(f"{{{DS}}}KeyValue")
    rsa_value = etree.SubElement(key_value, f"{{{DS}}}RSAKeyValue")
    etree.SubElement(rsa_value, f"{{{DS}}}Modulus")
    etree.SubElement(rsa_value, f"{{{DS}}}Exponent").text = "AQAB"
    key_info.insert(0, key_value)
    with pytest.raises(SoapFault, match="signature does not verify"):
        bernard.call("urn:ihe:iti:2007:RegistryStoredQuery", etree.Element("x"), security=undecodable)

    # Wrapped: an evil assertion carrying the genuine signed one inside.
    genuine = bernard.vihf()
    evil = copy.deepcopy(genuine)
    evil.set("ID", "_evil")
    evil.append(genuine)
    with pytest.raises(SoapFault, match="exactly one assertion"):
        bernard.call("urn:ihe:iti:2007:RegistryStoredQuery", etree.Element("x"), security=evil)

    # Replayed: the same signed assertion twice.
    once = bernard.vihf()
    response = bernard.call(
        "urn:opendmp:dmp:TD0.2", etree.Element(f"{{{DMP_NS}}}RecordTestRequest"), security=copy.deepcopy(once)
    )
    assert response.body.get("status") == "ACTIF"
    with pytest.raises(SoapFault, match="replayed"):
        bernard.call("urn:opendmp:dmp:TD0.2", etree.Element(f"{{{DMP_NS}}}RecordTestRequest"), security=once)

    # Expired.
    old = sign_assertion(
        build_assertion(
            bernard.claims,
            certificate=bernard.certificate,
            now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
        ),
        key=bernard.key,
        certificate=bernard.certificate,
    )
    with pytest.raises(SoapFault, match="expired"):
        bernard.call("urn:ihe:iti:2007:RegistryStoredQuery", etree.Element("x"), security=old)

    # Meant for another relying party too: every AudienceRestriction must name this DMP (SAML
    # core 2.5.1.4), one of them naming it is not enough.
    elsewhere = build_assertion(bernard.claims, certificate=bernard.certificate)
    conditions = elsewhere.find(f"{{{SAML}}}Conditions")
    assert conditions is not None
    other = etree.SubElement(conditions, f"{{{SAML}}}AudienceRestriction")
    etree.SubElement(other, f"{{{SAML}}}Audience").text = "urn:another-service"
    elsewhere = sign_assertion(elsewhere, key=bernard.key, certificate=bernard.certificate)
    with pytest.raises(SoapFault, match="audience"):
        bernard.call("urn:ihe:iti:2007:RegistryStoredQuery", etree.Element("x"), security=elsewhere)

    # Unknown homologation number.
    with pytest.raises(SoapFault, match="homologation"):
        bernard.provide_and_register(submission, claims=replace(bernard.claims, homologation="OPENDMP-NOPE"))

    # A CPS card that is not the subject's: Moreau's card claiming to be Bernard.
    moreau_card = xds_kit.card(personas.dr_moreau)
    impostor = xds_kit.client(personas.dr_bernard)
    impostor.key, impostor.certificate = moreau_card.key, moreau_card.certificate
    with pytest.raises(SoapFault, match="does not belong"):
        impostor.provide_and_register(submission)

    # A certificate from outside the trusted PKI.
    from dmp.identity.pki import self_signed_clone

    clone = self_signed_clone(bernard.certificate)
    outsider = xds_kit.client(personas.dr_bernard)
    outsider.key, outsider.certificate = clone.key, clone.certificate
    with pytest.raises(SoapFault, match="certificate"):
        outsider.provide_and_register(submission)

    # Wrong patient: the submission is for Léo, the VIHF names Alice.
    leo_submission = submission_for(
        ins=personas.leo.identifier,
        author=author_info(personas.dr_bernard, personas.cabinet),
        drafts=[DocumentDraft()],
    )
    wrong = bernard.provide_and_register(leo_submission)
    assert not wrong.ok
    assert {e.code for e in wrong.errors} == {"XDSPatientIdDoesNotMatch"}

    # Tampered content: declared hash differs from the bytes.
    bad_hash = alice_submission(xds_kit, [DocumentDraft(declared_hash="0" * 40)])
    refused = bernard.provide_and_register(bad_hash)
    assert {e.code for e in refused.errors} == {"XDSNonIdenticalHash"}

    # The blocked PS learns nothing.
    durand = xds_kit.client(personas.dr_durand)
    blocked = durand.stored_query(
        StoredQuery.FIND_DOCUMENTS,
        {
            "$XDSDocumentEntryPatientId": f"'{durand.claims.patient_ins}'",
            "$XDSDocumentEntryStatus": f"('{APPROVED}')",
        },
    )
    assert not blocked.ok
    assert registry_objects(blocked, "ExtrinsicObject") == []

    assert _documents_now() == before


def test_a_missing_or_repeated_single_valued_parameter_is_a_param_number_error(xds_kit):
    """ITI-18: a required parameter missing, or one that takes a single value given several, is
    XDSStoredQueryParamNumber; the registry does not pick one of the values."""
    bernard = xds_kit.client(xds_kit.personas.dr_bernard)
    assert bernard.provide_and_register(alice_submission(xds_kit, [DocumentDraft()])).ok
    patient = f"'{bernard.claims.patient_ins}'"
    statuses = f"('{APPROVED}')"
    cases: dict[str, dict[str, str | None]] = {
        "patient twice": {"$XDSDocumentEntryPatientId": f"({patient},{patient})"},
        "no patient": {},
        "no status": {"$XDSDocumentEntryPatientId": patient, "$XDSDocumentEntryStatus": None},
        "two creation times": {
            "$XDSDocumentEntryPatientId": patient,
            "$XDSDocumentEntryCreationTimeFrom": "('20200101','20250101')",
        },
    }
    for case, params in cases.items():
        sent: dict[str, str | None] = {"$XDSDocumentEntryStatus": statuses, **params}
        response = bernard.stored_query(
            StoredQuery.FIND_DOCUMENTS, {k: v for k, v in sent.items() if v is not None}
        )
        assert {e.code for e in response.errors} == {"XDSStoredQueryParamNumber"}, case
        assert registry_objects(response, "ExtrinsicObject") == [], case
    assert len(find_documents(bernard)) == 1


def test_duplicate_unique_id_with_other_bytes_is_refused(xds_kit):
    bernard = xds_kit.client(xds_kit.personas.dr_bernard)
    first = alice_submission(xds_kit, [DocumentDraft(unique_id="1.2.250.1.999.1.424242")])
    assert bernard.provide_and_register(first).ok
    again = alice_submission(
        xds_kit, [DocumentDraft(unique_id="1.2.250.1.999.1.424242", title="Autre contenu")]
    )
    response = bernard.provide_and_register(again)
    # IHE: a uniqueId already registered for a document with another hash is XDSNonIdenticalHash.
    assert {e.code for e in response.errors} == {"XDSNonIdenticalHash"}
    assert DocumentEntry.objects.filter(unique_id="1.2.250.1.999.1.424242").count() == 1


def test_the_habilitation_matrix_hides_document_types_from_a_profession(xds_kit):
    personas = xds_kit.personas
    bernard = xds_kit.client(personas.dr_bernard)
    # A delivery report (15508-5) is never shown to a podiatrist; an ordinary report (11488-4) is.
    submission = alice_submission(
        xds_kit, [DocumentDraft(type_code="15508-5"), DocumentDraft(type_code="11488-4")]
    )
    assert bernard.provide_and_register(submission).ok
    delivery, report = (d.unique_id for d in submission.documents)
    assert {unique_id_of(e) for e in find_documents(bernard)} == {delivery, report}
    garnier = xds_kit.client(personas.podiatrist_garnier)
    assert {unique_id_of(e) for e in find_documents(garnier)} == {report}
    repository = "1.2.250.1.213.4.1.1.1"
    _, documents = garnier.retrieve([(repository, delivery)])
    assert documents == []


def test_td03_self_authorisation_and_break_glass_follow_the_patients_wishes(xds_kit):
    personas = xds_kit.personas
    petit = xds_kit.client(personas.dr_petit)
    assert petit.record_test().body.get("authorisation") == "NON_EXISTE"
    blind = petit.stored_query(
        StoredQuery.FIND_DOCUMENTS,
        {
            "$XDSDocumentEntryPatientId": f"'{petit.claims.patient_ins}'",
            "$XDSDocumentEntryStatus": f"('{APPROVED}')",
        },
    )
    assert not blind.ok
    # Break-glass needs a reason; with one it opens the record and is recorded for the patient.
    with pytest.raises(SoapFault):
        petit.record_test(claims=replace(petit.claims, purpose_of_use="bris_de_glace"))
    urgent = replace(petit.claims, purpose_of_use="bris_de_glace", break_glass_reason="Patiente inconsciente")
    assert petit.stored_query(
        StoredQuery.FIND_DOCUMENTS,
        {
            "$XDSDocumentEntryPatientId": f"'{petit.claims.patient_ins}'",
            "$XDSDocumentEntryStatus": f"('{APPROVED}')",
        },
        claims=urgent,
    ).ok
    assert AuditEvent.objects.filter(
        actor_id=personas.dr_petit.national_id, access_mode="bris_de_glace"
    ).exists()
    # TD0.3: the PS adds its own authorisation, then removes it.
    assert petit.dmp("TD0.3", "AuthorisationRequest", action="AJOUT").body.get("status") == "OK"
    assert petit.record_test().body.get("authorisation") == "VALIDE"
    petit.dmp("TD0.3", "AuthorisationRequest", action="SUPPRESSION")
    assert petit.record_test().body.get("authorisation") != "VALIDE"


def test_only_the_author_deletes_and_a_ps_cannot_remove_metadata(xds_kit):
    personas = xds_kit.personas
    bernard = xds_kit.client(personas.dr_bernard)
    submission = alice_submission(xds_kit, [DocumentDraft()])
    assert bernard.provide_and_register(submission).ok
    entry = find_documents(bernard)[0]
    moreau = xds_kit.client(personas.dr_moreau)
    refused = moreau.update_status(entry.get("id"), APPROVED, "urn:asip:ci-sis:2010:StatusType:Deleted")
    assert not refused.ok
    # Dr Moreau reads the document: he is told why, not that it is unknown.
    assert [(e.code, e.message) for e in refused.errors] == [
        ("XDSRegistryError", "not allowed to change this document: not_author")
    ]
    assert (
        DocumentEntry.objects.get(unique_id=submission.documents[0].unique_id).availability_status == APPROVED
    )
    body = etree.Element(
        "{urn:ihe:iti:rmd:2017}RemoveMetadataRequest", nsmap={"rmd": "urn:ihe:iti:rmd:2017", "rim": RIM}
    )
    refs = etree.SubElement(body, q(RIM, "ObjectRefList"))
    etree.SubElement(refs, q(RIM, "ObjectRef"), id=entry.get("id"))
    removal = bernard.call("urn:ihe:iti:2010:DeleteDocumentSet", body)
    assert not removal.ok
    assert DocumentEntry.objects.filter(unique_id=submission.documents[0].unique_id).exists()
    deleted = bernard.update_status(entry.get("id"), APPROVED, "urn:asip:ci-sis:2010:StatusType:Deleted")
    assert deleted.ok, deleted.errors
    assert find_documents(bernard) == []


def test_mutual_tls_binds_the_client_certificate_to_the_vihf_signer(xds_kit, settings):
    personas = xds_kit.personas
    settings.OPENDMP_TLS_CLIENT_CERT_HEADER = "HTTP_X_SSL_CLIENT_CERT"
    bernard = xds_kit.client(personas.dr_bernard)
    with pytest.raises(SoapFault, match="client certificate"):
        bernard.record_test()
    auth, _ = xds_kit.pki.cps_card(
        national_id=personas.dr_bernard.national_id, display_name=personas.dr_bernard.display_name
    )
    from urllib.parse import quote

    from dmp.identity.models import Certificate
    from dmp.identity.pki import certificate_register

    certificate_register(auth, usage=Certificate.Usage.CPS_AUTH, professional=personas.dr_bernard)
    bernard.extra_headers = {"X-SSL-Client-Cert": quote(auth.certificate_pem.decode())}
    assert bernard.record_test().body.get("status") == "ACTIF"
    moreau_auth, _ = xds_kit.pki.cps_card(
        national_id=personas.dr_moreau.national_id, display_name=personas.dr_moreau.display_name
    )
    certificate_register(moreau_auth, usage=Certificate.Usage.CPS_AUTH, professional=personas.dr_moreau)
    bernard.extra_headers = {"X-SSL-Client-Cert": quote(moreau_auth.certificate_pem.decode())}
    with pytest.raises(SoapFault, match="differ"):
        bernard.record_test()


FULL_CONTACT = {
    "address": "3 rue de Brest",
    "postalCode": "35000",
    "city": "Rennes",
    "email": "alice@example.org",
    "mobile": "0600000000",
}


def test_an_authorised_ps_updates_the_administrative_part_and_a_bad_email_changes_nothing(xds_kit):
    personas = xds_kit.personas
    bernard = xds_kit.client(personas.dr_bernard)
    updated = bernard.dmp("AdministrativeUpdate", "AdministrativeUpdateRequest", **FULL_CONTACT)
    assert updated.body.get("city") == "Rennes"
    with pytest.raises(SoapFault, match="invalid"):
        bernard.dmp("AdministrativeUpdate", "AdministrativeUpdateRequest", city="Brest", email="not-an-email")
    personas.alice.refresh_from_db()
    assert (personas.alice.city, personas.alice.email) == ("Rennes", "alice@example.org")
    durand = xds_kit.client(personas.dr_durand)
    with pytest.raises(SoapFault):
        durand.dmp("AdministrativeUpdate", "AdministrativeUpdateRequest", city="Paris")
    personas.alice.refresh_from_db()
    assert personas.alice.city == "Rennes"


def contact_of(patient):
    patient.refresh_from_db()
    return (patient.address_line, patient.postal_code, patient.city, patient.email, patient.mobile_phone)


def test_administrative_update_sets_only_the_attributes_sent(xds_kit):
    """An LPS that sends only a new e-mail must not wipe the patient's address: absent attributes
    stay as they are, an empty one clears its field, and the trace names the fields changed."""
    personas = xds_kit.personas
    alice = personas.alice
    bernard = xds_kit.client(personas.dr_bernard)
    bernard.dmp("AdministrativeUpdate", "AdministrativeUpdateRequest", **FULL_CONTACT)
    answer = bernard.dmp("AdministrativeUpdate", "AdministrativeUpdateRequest", email="alice.m@example.org")
    assert contact_of(alice) == ("3 rue de Brest", "35000", "Rennes", "alice.m@example.org", "0600000000")
    assert dict(answer.body.attrib) == {
        "address": "3 rue de Brest",
        "postalCode": "35000",
        "city": "Rennes",
        "email": "alice.m@example.org",
        "mobile": "0600000000",
    }
    last = AuditEvent.objects.filter(action=AuditAction.RECORD_UPDATE_ADMIN).latest("id")
    assert last.details == {"fields": ["email"]}

    bernard.dmp("AdministrativeUpdate", "AdministrativeUpdateRequest", mobile="")
    assert contact_of(alice) == ("3 rue de Brest", "35000", "Rennes", "alice.m@example.org", "")

    events = AuditEvent.objects.count()
    with pytest.raises(SoapFault, match="no contact field"):
        bernard.dmp("AdministrativeUpdate", "AdministrativeUpdateRequest")
    with pytest.raises(SoapFault, match="limited to 100 characters"):
        bernard.dmp("AdministrativeUpdate", "AdministrativeUpdateRequest", city="x" * 101, email="a@b.fr")
    assert contact_of(alice) == ("3 rue de Brest", "35000", "Rennes", "alice.m@example.org", "")
    assert AuditEvent.objects.count() == events


def test_td02_in_the_hl7v3_shape_of_the_dmp(xds_kit):
    """PRPA_IN201307UV02 -> PRPA_IN201308UV02: found, not found, blocked PS, mismatched INS."""
    personas = xds_kit.personas
    bernard = xds_kit.client(personas.dr_bernard)
    response, facts = bernard.demographics()
    assert response.body.tag == "{urn:hl7-org:v3}PRPA_IN201308UV02"
    ack = response.body.find("{urn:hl7-org:v3}acknowledgement/{urn:hl7-org:v3}typeCode")
    assert ack is not None
    assert ack.get("code") == "AA"
    assert (facts.status, facts.authorisation, facts.medecin_traitant) == ("ACTIF", "VALIDE", True)
    assert (facts.family_name, facts.sex, facts.birth_date) == ("Martin", "F", personas.alice.birth_date)
    # Same answer as the proprietary shape.
    legacy = bernard.record_test().body
    assert (legacy.get("status"), legacy.get("authorisation")) == (facts.status, facts.authorisation)

    bob = personas.bob_traits
    bob_cx = f"{bob.ins}^^^&{bob.ins_authority}&ISO^NH"
    _, unknown = xds_kit.client(personas.dr_bernard, patient_ins=bob_cx).demographics()
    assert unknown.status == "INEXISTANT"

    # A blocked PS learns that it is blocked, and nothing about the patient.
    _, blocked = xds_kit.client(personas.dr_durand).demographics()
    assert (blocked.authorisation, blocked.family_name, blocked.birth_date) == ("INTERDIT", "", None)

    # The INS asked must be the VIHF's patient.
    with pytest.raises(SoapFault) as refused:
        bernard.demographics(personas.leo.identifier)
    assert refused.value.subcode.endswith("patient_id_mismatch")


def test_td15_opens_the_patients_web_account_and_the_code_activates_it(xds_kit):
    from dmp.accounts.models import WebAccount
    from dmp.accounts.services import account_activate

    personas = xds_kit.personas
    bernard = xds_kit.client(personas.dr_bernard)
    answer = bernard.dmp("TD1.5", "WebAccountRequest", otpChannel="EMAIL", otpDestination="alice@example.org")
    code = answer.body.get("activationCode")
    assert answer.body.get("status") == "EN_ATTENTE_ACTIVATION"
    assert code
    assert bernard.record_test().body.get("webAccount") == "true"
    account = WebAccount.objects.get(record__patient=personas.alice)
    assert code not in account.activation_code_hash
    activated = account_activate(
        code=code, identifier="alice.martin", password="Une phrase de passe longue 42!"
    )
    assert activated.status == WebAccount.Status.ACTIVE

    # A PS without authorisation, and a bad channel, are refused and change nothing.
    before = list(WebAccount.objects.values_list("pk", "status", "activation_code_hash"))
    with pytest.raises(SoapFault):
        xds_kit.client(personas.dr_petit).dmp("TD1.5", "WebAccountRequest", otpChannel="EMAIL")
    with pytest.raises(SoapFault) as refused:
        bernard.dmp("TD1.5", "WebAccountRequest", otpChannel="PIGEON")
    assert "channel" in refused.value.reason
    # A destination that cannot receive the codes is refused as on the PS portal (found by review).
    for channel, destination in (("EMAIL", "pas une adresse"), ("SMS", "bonjour"), ("SMS", "01 23 45 67 89")):
        with pytest.raises(SoapFault) as refused:
            bernard.dmp(
                "TD1.5",
                "WebAccountRequest",
                otpChannel=channel,
                otpDestination=destination,
                revokeCurrent="true",
            )
        assert "otp_destination" in refused.value.reason or "not a" in refused.value.reason
    assert list(WebAccount.objects.values_list("pk", "status", "activation_code_hash")) == before
    # A mobile number is kept without its separators.
    bernard.dmp(
        "TD1.5", "WebAccountRequest", otpChannel="SMS", otpDestination="06 12-34.56 78", revokeCurrent="true"
    )
    account = WebAccount.objects.get(record__patient=personas.alice)
    assert (account.otp_channel, account.otp_destination) == ("sms", "0612345678")


def test_td15_opens_a_legal_representatives_account_on_the_minors_record_only(xds_kit):
    from dmp.accounts.models import WebAccount

    personas = xds_kit.personas
    mother = personas.alice_as_mother
    for_leo = xds_kit.client(personas.dr_bernard, patient_ins=personas.leo.identifier.hl7())
    answer = for_leo.dmp(
        "TD1.5",
        "WebAccountRequest",
        representative=str(mother.public_id),
        otpChannel="EMAIL",
        otpDestination="alice@example.org",
    )
    assert answer.body.get("status") == "EN_ATTENTE_ACTIVATION"
    assert WebAccount.objects.get(representative=mother).record.patient == personas.leo

    # Léo's mother is nobody's representative on Alice's record; a malformed id is refused.
    for_alice = xds_kit.client(personas.dr_bernard)
    with pytest.raises(SoapFault) as unknown:
        for_alice.dmp("TD1.5", "WebAccountRequest", representative=str(mother.public_id))
    assert "legal representative" in unknown.value.reason
    with pytest.raises(SoapFault) as malformed:
        for_alice.dmp("TD1.5", "WebAccountRequest", representative="not-a-uuid")
    assert "UUID" in malformed.value.reason
    assert WebAccount.objects.count() == 1


def test_td09_contextual_link_opens_the_ps_portal_once(xds_kit):
    import requests

    personas = xds_kit.personas
    bernard = xds_kit.client(personas.dr_bernard)
    answer = bernard.dmp("TD0.9", "ContextLinkRequest", page="documents").body
    assert answer.get("expiresIn") == "120"
    link = f"{xds_kit.base_url}{answer.get('path')}"
    browser = requests.Session()
    opened = browser.get(link, timeout=10, allow_redirects=False)
    record = Record.objects.get(patient=personas.alice)
    assert opened.status_code == 302
    assert opened.headers["Location"] == f"/pro/dossier/{record.public_id}/documents"
    assert browser.get(f"{xds_kit.base_url}{opened.headers['Location']}", timeout=10).status_code == 200
    # Single use, and no link for an unknown page.
    assert requests.get(link, timeout=10, allow_redirects=False).status_code == 403
    with pytest.raises(SoapFault):
        bernard.dmp("TD0.9", "ContextLinkRequest", page="admin")


def test_td09_the_link_carries_an_opaque_nonce_never_the_ins(xds_kit):
    """The path lands in browser histories and access logs: it must not give the INS away."""
    personas = xds_kit.personas
    path = xds_kit.client(personas.dr_bernard).dmp("TD0.9", "ContextLinkRequest").body.get("path")
    token = path.removeprefix("/pro/ouvrir/")
    assert personas.alice.ins not in path
    # The signed links of old were base64 of zlib of their JSON: readable without any key.
    payload = token.split(":", 1)[0].lstrip(".")
    with contextlib.suppress(ValueError, zlib.error):
        readable = zlib.decompress(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert personas.alice.ins.encode() not in readable
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)


def test_td09_a_link_asked_for_in_secret_connection_opens_a_secret_portal_session(xds_kit):
    """Léo's VIHF is in his secret connection: the portal the link opens keeps it, so his
    mother does not see the PS's search in the portal among her son's traces."""
    import requests

    from dmp.documents.selectors import record_traces_shown

    personas = xds_kit.personas
    leo = personas.leo
    bernard = xds_kit.client(personas.dr_bernard, patient_ins=leo.identifier.hl7(), secret_connection=True)
    path = bernard.dmp("TD0.9", "ContextLinkRequest", page="documents").body.get("path")
    browser = requests.Session()
    opened = browser.get(f"{xds_kit.base_url}{path}", timeout=10, allow_redirects=False)
    assert opened.headers["Location"] == f"/pro/dossier/{leo.record.public_id}/documents"
    page = browser.get(f"{xds_kit.base_url}{opened.headers['Location']}", timeout=10)
    assert 'id="secret-connection"' in page.text
    query = AuditEvent.objects.get(
        action=AuditAction.DOCUMENT_QUERY,
        actor_id=personas.dr_bernard.national_id,
        channel=Channel.PROFESSIONAL_PORTAL,
    )
    assert query.details.get("secret_connection") is True
    mother = personas.representative(personas.alice_as_mother)
    assert query.pk not in {event.pk for event in record_traces_shown(caller=mother, record=leo.record)}


def test_td04_lists_authorised_records_since_a_date(xds_kit):
    """`since` in its documented form, a date, is the DMP's local midnight (it raised on a naive
    date-time before); a date-time with its offset works too, and a bad one is refused."""
    bernard = xds_kit.client(xds_kit.personas.dr_bernard)
    alice = xds_kit.personas.alice.identifier.value

    def listed(**attributes):
        response = bernard.dmp("TD0.4", "AuthorisedRecordsRequest", **attributes)
        return {record.get("ins") for record in response.body.findall(f"{{{DMP_NS}}}Record")}

    assert alice in listed(since="2020-01-01")
    assert alice in listed(since="2020-01-01T00:00:00+01:00")
    assert listed(since=(dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).date().isoformat()) == set()
    with pytest.raises(SoapFault, match="since must be an ISO date-time"):
        bernard.dmp("TD0.4", "AuthorisedRecordsRequest", since="31/01/2026")


MASQUE_PS = ("MASQUE_PS", "1.2.250.1.213.1.1.4.13")
INVISIBLE_PATIENT = ("INVISIBLE_PATIENT", "1.2.250.1.213.1.1.4.13")
INVISIBLE_LEGAL_REPRESENTATIVES = ("INVISIBLE_REPRESENTANTS_LEGAUX", "1.2.250.1.213.1.1.4.13")
NORMAL = ("N", "2.16.840.1.113883.5.25")
ARCHIVED = "urn:asip:ci-sis:2010:StatusType:Archived"
DELETED = "urn:asip:ci-sis:2010:StatusType:Deleted"


def metadata_state():
    """Everything an ITI-57 may change, and the trail of what it did."""
    documents = {
        d.unique_id: (
            d.version,
            d.entry_uuid,
            d.availability_status,
            d.masked_to_professionals,
            d.invisible_to_patient,
        )
        for d in DocumentEntry.objects.all()
    }
    succeeded = AuditEvent.objects.filter(outcome="success").count()
    return documents, DocumentEntryVersion.objects.count(), succeeded


def test_an_update_applies_all_its_changes_or_none(xds_kit):
    """ITI-57 is atomic: a refused change (a wrong original status, a document the caller may not
    delete) leaves the other changes of the same update unapplied; an accepted update gives each
    document one new metadata version, however many of its flags and its status it changes."""
    personas = xds_kit.personas
    bernard = xds_kit.client(personas.dr_bernard)
    moreau = xds_kit.client(personas.dr_moreau)
    mine = alice_submission(xds_kit, [DocumentDraft(title="A"), DocumentDraft(title="B")])
    assert bernard.provide_and_register(mine).ok
    theirs = submission_for(
        ins=personas.alice.identifier,
        author=author_info(personas.dr_moreau, personas.chu),
        drafts=[DocumentDraft()],
    )
    assert moreau.provide_and_register(theirs).ok
    entries = {unique_id_of(e): e for e in find_documents(bernard)}
    a, b = entries[mine.documents[0].unique_id], entries[mine.documents[1].unique_id]
    other = entries[theirs.documents[0].unique_id]
    before = metadata_state()

    wrong_original = bernard.update(
        entries=[(a, [NORMAL, MASQUE_PS])], statuses=[(b.get("id"), ARCHIVED, DELETED)]
    )
    assert not wrong_original.ok
    assert "cannot change status" in str(wrong_original.errors)
    assert metadata_state() == before

    not_the_author = bernard.update(
        entries=[(a, [NORMAL, MASQUE_PS])], statuses=[(other.get("id"), APPROVED, DELETED)]
    )
    assert not not_the_author.ok
    assert metadata_state() == before

    twice = bernard.update(statuses=[(b.get("id"), APPROVED, ARCHIVED), (b.get("id"), APPROVED, DELETED)])
    assert not twice.ok
    assert metadata_state() == before

    # Refused while writing: B's flags are a combination this DMP refuses, found once A's new
    # version is written; A's is undone with it.
    refused_combination = bernard.update(
        entries=[(a, [NORMAL, MASQUE_PS]), (b, [NORMAL, MASQUE_PS, INVISIBLE_PATIENT])]
    )
    assert not refused_combination.ok
    assert "cannot be combined" in str(refused_combination.errors)
    assert metadata_state() == before

    accepted = bernard.update(
        entries=[(a, [NORMAL, INVISIBLE_PATIENT, INVISIBLE_LEGAL_REPRESENTATIVES])],
        statuses=[(b.get("id"), APPROVED, ARCHIVED)],
    )
    assert accepted.ok, accepted.errors
    documents, versions, _ = metadata_state()
    version, _, status, _, invisible = documents[mine.documents[0].unique_id]
    assert (version, status, invisible) == (before[0][mine.documents[0].unique_id][0] + 1, APPROVED, True)
    assert DocumentEntry.objects.get(unique_id=mine.documents[0].unique_id).invisible_to_legal_representatives
    assert documents[mine.documents[1].unique_id][2] == ARCHIVED
    assert versions == before[1] + 2  # one previous version kept per document changed
    trail = AuditEvent.objects.filter(actor_id=personas.dr_bernard.national_id, outcome="success")
    assert {
        AuditAction.DOCUMENT_VISIBILITY_CHANGE,
        AuditAction.DOCUMENT_ARCHIVE,
    } <= set(trail.values_list("action", flat=True))


def test_an_update_changing_other_metadata_is_refused_not_half_applied(xds_kit):
    """The DMP changes only its confidentiality codes by ITI-57 (as a FHIR PATCH of another
    element is refused): a new version with another title, or R instead of N, is refused whole
    rather than masked with the title silently kept."""
    personas = xds_kit.personas
    bernard = xds_kit.client(personas.dr_bernard)
    submission = alice_submission(xds_kit, [DocumentDraft(title="Compte rendu")])
    assert bernard.provide_and_register(submission).ok
    (entry,) = find_documents(bernard)
    before = metadata_state()
    retitled = copy.deepcopy(entry)
    retitled.find(f"{q(RIM, 'Name')}/{q(RIM, 'LocalizedString')}").set("value", "Autre titre")
    answer = bernard.update_document(retitled, confidentiality=[NORMAL, MASQUE_PS])
    assert not answer.ok
    assert "not title" in str(answer.errors)
    assert metadata_state() == before
    restricted = bernard.update_document(entry, confidentiality=[("R", "2.16.840.1.113883.5.25"), MASQUE_PS])
    assert not restricted.ok
    assert "not confidentialityCode" in str(restricted.errors)
    assert metadata_state() == before
    assert bernard.update_document(entry, confidentiality=[NORMAL, MASQUE_PS]).ok


def test_a_card_may_name_only_a_structure_its_holder_works_in(xds_kit):
    """Direct mode: the CPS proves the person, not the structure. Dr Bernard (cabinet) naming the
    CHU in his VIHF would inherit the CHU's authorisations and list its patients: refused, on SOAP
    and for a FHIR token alike."""
    personas = xds_kit.personas
    bernard_at_chu = xds_kit.client(personas.dr_bernard, structure_id=personas.chu.id_nat)
    events = AuditEvent.objects.count()
    with pytest.raises(SoapFault, match="not affiliated"):
        bernard_at_chu.dmp("TD0.4", "AuthorisedRecordsRequest")
    with pytest.raises(SoapFault, match="not affiliated"):
        find_documents(bernard_at_chu)
    with pytest.raises(urllib.error.HTTPError):
        xds_kit.token(personas.dr_bernard, structure_id=personas.chu.id_nat)
    assert AuditEvent.objects.count() == events
    assert xds_kit.client(personas.dr_moreau).record_test().body.get("status") == "ACTIF"  # the CHU's own PS


def test_a_structure_may_name_only_its_own_active_staff(xds_kit):
    """Indirect mode: the structure's certificate vouches for its staff, not for anyone. The
    pharmacy naming Dr Bernard (not affiliated to it) would act with his authorisations and his
    authorship (read, delete his documents): refused before anything is read or changed, as is
    the CHU naming its own Dr Moreau once the directory deactivates him."""
    from dmp.identity.models import Certificate
    from dmp.identity.pki import certificate_register
    from opendmp_client.xds import XdsClient

    personas = xds_kit.personas
    lot = alice_submission(xds_kit, [DocumentDraft(title="CR Bernard")])
    assert xds_kit.client(personas.dr_bernard).provide_and_register(lot).ok

    def structure_client(structure, professional):
        _, sign = xds_kit.pki.structure(id_nat=structure.id_nat, name=structure.name)
        certificate_register(sign, usage=Certificate.Usage.ORG_SIGN, structure=structure)
        return XdsClient(
            endpoint=xds_kit.endpoint,
            claims=xds_kit.claims(professional, structure, authentication_mode="INDIRECTE"),
            key=sign.key,
            certificate=sign.certificate,
        )

    events = AuditEvent.objects.count()
    pharmacy_as_bernard = structure_client(personas.pharmacy, personas.dr_bernard)
    with pytest.raises(SoapFault, match="staff"):
        find_documents(pharmacy_as_bernard)
    entry_uuid = DocumentEntry.objects.get(unique_id=lot.documents[0].unique_id).entry_uuid
    with pytest.raises(SoapFault, match="staff"):
        pharmacy_as_bernard.update_status(
            f"urn:uuid:{entry_uuid}", APPROVED, "urn:asip:ci-sis:2010:StatusType:Deleted"
        )
    assert DocumentEntry.objects.get(unique_id=lot.documents[0].unique_id).availability_status == APPROVED
    assert AuditEvent.objects.count() == events

    chu_as_moreau = structure_client(personas.chu, personas.dr_moreau)
    assert chu_as_moreau.record_test().body.get("status") == "ACTIF"
    personas.dr_moreau.is_active = False
    personas.dr_moreau.save(update_fields=["is_active"])
    with pytest.raises(SoapFault, match="staff"):
        chu_as_moreau.record_test()


def test_staff_the_directory_does_not_know_belong_to_the_structure_that_vouches(xds_kit):
    """A hospital names staff the directory does not know; their identity is the hospital's. The
    pharmacy naming the same identifier gets none of their rights: not their authorship (delete
    their document), not the médecin traitant status the hospital declared for them (see a
    document masked to professionals), not their own traces (found by review)."""
    from dmp.identity.models import Certificate, HealthProfessional
    from dmp.identity.pki import certificate_register
    from opendmp_client.vihf import VihfClaims
    from opendmp_client.xds import XdsClient

    personas = xds_kit.personas
    unknown = "899900000001"
    assert not HealthProfessional.objects.filter(national_id=unknown).exists()

    def vouched_by(structure):
        _, sign = xds_kit.pki.structure(id_nat=structure.id_nat, name=structure.name)
        certificate_register(sign, usage=Certificate.Usage.ORG_SIGN, structure=structure)
        claims = replace(
            xds_kit.claims(personas.dr_moreau, structure, authentication_mode="INDIRECTE"),
            subject_id=unknown,
            subject_name="Dr Inconnu",
        )
        assert isinstance(claims, VihfClaims)
        return XdsClient(endpoint=xds_kit.endpoint, claims=claims, key=sign.key, certificate=sign.certificate)

    masked = alice_submission(xds_kit, [DocumentDraft(title="Masqué", confidentiality=("N", "MASQUE_PS"))])
    assert xds_kit.client(personas.dr_bernard).provide_and_register(masked).ok
    chu = vouched_by(personas.chu)
    lot = submission_for(
        ins=personas.alice.identifier,
        author=author_for(
            person_id=unknown,
            family_name="Inconnu",
            given_name="Jean",
            profession_code="10",
            specialty_code="SM26",
            structure_id=personas.chu.id_nat,
            structure_name=personas.chu.name,
        ),
        drafts=[DocumentDraft(title="CR CHU")],
    )
    assert chu.provide_and_register(lot).ok
    ok = "OK"
    assert chu.dmp("TD0.3", "AuthorisationRequest", action="AJOUT").body.get("status") == ok
    assert (
        chu.dmp("TD0.3", "AuthorisationRequest", action="AJOUT", role="MEDECIN_TRAITANT").body.get("status")
        == ok
    )
    assert len(find_documents(chu)) == 2  # the médecin traitant sees the masked document

    pharmacy = vouched_by(personas.pharmacy)
    assert pharmacy.record_test().body.get("medecinTraitant") != "true"
    assert pharmacy.dmp("TD0.3", "AuthorisationRequest", action="AJOUT").body.get("status") == ok
    assert [unique_id_of(e) for e in find_documents(pharmacy)] == [lot.documents[0].unique_id]
    entry = DocumentEntry.objects.get(unique_id=lot.documents[0].unique_id)
    deleted = pharmacy.update_status(
        f"urn:uuid:{entry.entry_uuid}", APPROVED, "urn:asip:ci-sis:2010:StatusType:Deleted"
    )
    assert not deleted.ok
    assert DocumentEntry.objects.get(unique_id=lot.documents[0].unique_id).availability_status == APPROVED


def test_an_update_changes_only_the_documents_of_the_vihf_patient(xds_kit):
    """The VIHF names Alice: a status change aimed at Léo's document (Dr Bernard has rights on
    it) answers as for an unknown document and changes nothing, the rest of the update neither."""
    personas = xds_kit.personas
    bernard_leo = xds_kit.client(personas.dr_bernard, patient_ins=personas.leo.identifier.hl7())
    leo_lot = submission_for(
        ins=personas.leo.identifier,
        author=author_info(personas.dr_bernard, personas.cabinet),
        drafts=[DocumentDraft(title="CR Léo")],
    )
    assert bernard_leo.provide_and_register(leo_lot).ok
    leo_entry = find_documents(bernard_leo)[0]
    bernard_alice = xds_kit.client(personas.dr_bernard)
    assert bernard_alice.provide_and_register(alice_submission(xds_kit, [DocumentDraft(title="CR Alice")])).ok
    alice_entry = find_documents(bernard_alice)[0]
    archived = "urn:asip:ci-sis:2010:StatusType:Archived"
    versions = DocumentEntryVersion.objects.count()

    alone = bernard_alice.update_status(leo_entry.get("id"), APPROVED, archived)
    assert not alone.ok
    both = bernard_alice.update(
        statuses=[(alice_entry.get("id"), APPROVED, archived), (leo_entry.get("id"), APPROVED, archived)]
    )
    assert not both.ok
    assert set(DocumentEntry.objects.values_list("availability_status", flat=True)) == {APPROVED}
    assert DocumentEntryVersion.objects.count() == versions
    assert (
        not AuditEvent.objects.filter(action=AuditAction.DOCUMENT_ARCHIVE).exclude(outcome="denied").exists()
    )


def test_an_update_of_a_hidden_document_answers_like_an_unknown_one(xds_kit):
    """Dr Moreau may not see a masked document. Whatever version or metadata he sends for it, the
    answer is the one an unknown logical id gets: he cannot probe its existence or its version."""
    personas = xds_kit.personas
    bernard = xds_kit.client(personas.dr_bernard)
    submission = alice_submission(xds_kit, [DocumentDraft()])
    assert bernard.provide_and_register(submission).ok
    (entry,) = find_documents(bernard)
    assert bernard.update_document(entry, confidentiality=[NORMAL, MASQUE_PS]).ok
    (masked,) = find_documents(bernard)
    moreau = xds_kit.client(personas.dr_moreau)
    stale = copy.deepcopy(masked)
    stale.find(q(RIM, "VersionInfo")).set("versionName", "1")
    retitled = copy.deepcopy(masked)
    retitled.find(f"{q(RIM, 'Name')}/{q(RIM, 'LocalizedString')}").set("value", "Autre titre")
    unknown = copy.deepcopy(masked)
    unknown.set("lid", "urn:uuid:00000000-0000-4000-8000-000000000000")
    before = metadata_state()
    answers = [
        moreau.update_document(candidate, confidentiality=[NORMAL])
        for candidate in (masked, stale, retitled, unknown)
    ]
    assert {tuple((e.code, e.message) for e in answer.errors) for answer in answers} == {
        (("XDSUnresolvedReferenceException", "unknown logical id"),)
    }
    assert metadata_state() == before


def test_an_entry_uuid_an_update_replaced_still_names_its_document(xds_kit):
    """A software that kept a document's entryUUID from before an ITI-57 update finds the document
    as it is now with GetDocuments, GetDocumentsAndAssociations and GetRelatedDocuments, but only
    while the caller may see it."""
    personas = xds_kit.personas
    bernard = xds_kit.client(personas.dr_bernard)
    first = alice_submission(xds_kit, [DocumentDraft(title="CR v1")])
    assert bernard.provide_and_register(first).ok
    (replaced,) = find_documents(bernard)
    replacement = alice_submission(xds_kit, [DocumentDraft(title="CR v2")], replaces={0: replaced.get("id")})
    assert bernard.provide_and_register(replacement).ok
    (entry,) = find_documents(bernard)
    old_uuid = entry.get("id")
    assert bernard.update_document(entry, confidentiality=[NORMAL, MASQUE_PS]).ok
    (masked,) = find_documents(bernard)
    assert masked.get("id") != old_uuid

    def ids(client, query, **params):
        response = client.stored_query(query, {"$XDSDocumentEntryEntryUUID": f"('{old_uuid}')", **params})
        assert response.ok, response.errors
        return [e.get("id") for e in registry_objects(response, "ExtrinsicObject")]

    assert ids(bernard, StoredQuery.GET_DOCUMENTS) == [masked.get("id")]
    assert ids(bernard, StoredQuery.GET_DOCUMENTS_AND_ASSOCIATIONS) == [masked.get("id")]
    related = ids(
        bernard,
        StoredQuery.GET_RELATED_DOCUMENTS,
        **{"$AssociationTypes": "('urn:ihe:iti:2007:AssociationType:RPLC')"},
    )
    assert sorted(related) == sorted([masked.get("id"), replaced.get("id")])
    moreau = xds_kit.client(personas.dr_moreau)
    assert ids(moreau, StoredQuery.GET_DOCUMENTS) == []


def test_a_software_does_only_what_its_homologation_covers(xds_kit):
    """The product's profiles and versions were stored and never read: a consultation-only
    product fed records and created them, an unhomologated version was accepted."""
    personas = xds_kit.personas
    _, number = software_register(
        vendor="Lecteur", name="Consultation seule", versions="2.0, 2.1", profiles=["CONSULTATION"]
    )
    reader = xds_kit.client(personas.dr_bernard, homologation=number, lps_version="2.1")
    assert find_documents(reader) == []  # consultation is covered
    before = _documents_now()
    with pytest.raises(SoapFault) as refused:
        reader.provide_and_register(alice_submission(xds_kit, [DocumentDraft()]))
    assert "Alimentation" in refused.value.reason
    bob = personas.bob_traits
    creator = xds_kit.client(
        personas.dr_bernard,
        homologation=number,
        lps_version="2.1",
        patient_ins=f"{bob.ins}^^^&{bob.ins_authority}&ISO^NH",
    )
    traits = {"birthFamilyName": bob.birth_family_name, "givenNames": bob.given_names}
    traits |= {"birthDate": bob.birth_date.isoformat(), "sex": bob.sex}
    with pytest.raises(SoapFault) as refused:
        creator.record_create(traits, consent=True)
    assert "Création" in refused.value.reason
    assert creator.record_test().body.get("status") == "INEXISTANT"  # TD0.2 belongs to every profile
    # A version the homologation does not cover is refused outright.
    other_version = xds_kit.client(personas.dr_bernard, homologation=number, lps_version="3.0")
    with pytest.raises(SoapFault) as refused:
        other_version.stored_query(
            StoredQuery.FIND_DOCUMENTS,
            {"$XDSDocumentEntryPatientId": f"'{other_version.claims.patient_ins}'"},
        )
    assert "not homologated" in refused.value.reason
    assert _documents_now() == before
    assert not Record.objects.filter(patient__ins=bob.ins).exists()
