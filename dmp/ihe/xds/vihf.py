"""Verifying a VIHF (signed SAML 2.0 assertion) and turning it into a policy `Caller`.

Every fact is read from the node the signature covers (signxml returns it), never from the
message as received, which defeats signature wrapping. The signing certificate must chain to
the configured trust bundle AND be registered to the PS (direct mode) or the structure
(indirect mode) the assertion speaks for; the homologation number must belong to an active
product; an assertion id is accepted once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from cryptography import x509
from django.conf import settings
from django.db import connection
from django.http import HttpRequest
from lxml import etree
from signxml.verifier import XMLVerifier

from dmp.access.actors import AccessMode, Actor, ActorKind, AuthenticationMode, Caller, Channel, Software
from dmp.common import clock
from dmp.common.errors import DomainError, ErrorCode
from dmp.common.single_use import SingleUse
from dmp.compat.services import UnknownSoftware, software_check
from dmp.identity.ins import Ins, InvalidIns, parse_hl7_ins
from dmp.identity.models import Certificate, HealthProfessional, Structure
from dmp.identity.pki import CertificateRejected, fingerprint_of, verify_against_bundle
from dmp.identity.selectors import (
    is_affiliated,
    professional_get,
    registered_certificate,
    signs_for_structure,
    structure_get,
)
from dmp.ihe.xds.dsg import DS, key_info_certificate
from dmp.ihe.xds.enveloped import SIGNXML_REFUSALS, SignatureMismatch, verified_assertion
from dmp.ihe.xds.models import SEEN_ASSERTION_UNIQUE, SeenAssertion

SAML: Final = "urn:oasis:names:tc:SAML:2.0:assertion"
HL7: Final = "urn:hl7-org:v3"
WSSE: Final = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
MAX_LIFETIME: Final = dt.timedelta(hours=2)


class VihfRejected(DomainError):
    """The security token is missing, malformed, untrusted, expired or replayed."""

    code = ErrorCode.FORBIDDEN


@dataclass(frozen=True)
class VihfFacts:
    assertion_id: str
    not_on_or_after: dt.datetime
    certificate_fingerprint: str
    subject_id: str
    subject_name: str
    profession: str
    specialty: str
    sector: str
    structure_id: str
    patient: Ins | None
    mode: AccessMode
    reason: str
    authentication: AuthenticationMode
    lps_id: str
    lps_name: str
    lps_version: str
    homologation: str
    secret_connection: bool


def _parse_time(value: str | None, what: str) -> dt.datetime:
    if not value:
        raise VihfRejected(f"VIHF without {what}")
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise VihfRejected(f"VIHF {what} is not a date-time") from exc
    if moment.tzinfo is None:
        raise VihfRejected(f"VIHF {what} must carry a time zone")
    return moment


def _attributes(assertion: etree._Element) -> dict[str, list[etree._Element]]:
    found: dict[str, list[etree._Element]] = {}
    for attribute in assertion.iterfind(f"{{{SAML}}}AttributeStatement/{{{SAML}}}Attribute"):
        found.setdefault(attribute.get("Name", ""), []).extend(attribute.findall(f"{{{SAML}}}AttributeValue"))
    return found


def _text(values: dict[str, list[etree._Element]], name: str, *, required: bool = True) -> str:
    listed = values.get(name, [])
    if not listed or not (listed[0].text or "").strip():
        if required:
            raise VihfRejected(f"VIHF attribute {name} is missing")
        return ""
    return (listed[0].text or "").strip()


def _codes(values: dict[str, list[etree._Element]], name: str) -> list[tuple[str, str]]:
    return [
        (coded.get("code", ""), coded.get("codeSystem", ""))
        for value in values.get(name, [])
        for coded in value
    ]


def _certificate(signature: etree._Element) -> x509.Certificate:
    try:
        return key_info_certificate(signature)
    except ValueError as exc:
        raise VihfRejected(f"the VIHF signature {exc}") from exc


def _signed_assertion(received: etree._Element, certificate: x509.Certificate) -> etree._Element | None:
    """The assertion as its signature covers it: by the lean path for the VIHF profile
    (`enveloped`, 0.1 ms), by signxml for any other form of XML-DSig."""
    try:
        signed = verified_assertion(received, certificate)
    except SignatureMismatch as exc:
        raise VihfRejected("the VIHF signature does not verify") from exc
    if signed is not None:
        return signed
    try:
        result = XMLVerifier().verify(received, x509_cert=certificate, id_attribute="ID", expect_references=1)
    except SIGNXML_REFUSALS as exc:
        raise VihfRejected("the VIHF signature does not verify") from exc
    if isinstance(result, list):
        raise VihfRejected("the VIHF must carry exactly one signature reference")
    fallback: etree._Element | None = result.signed_xml
    return fallback


def verify_assertion(security: etree._Element | None, *, now: dt.datetime | None = None) -> VihfFacts:
    """Check signature, trust, validity window and audience; return the signed facts."""
    if security is None:
        raise VihfRejected("no WS-Security header: a VIHF is required")
    assertions = security.findall(f"{{{SAML}}}Assertion")
    if len(assertions) != 1 or len(list(security.iter(f"{{{SAML}}}Assertion"))) != 1:
        raise VihfRejected("the WS-Security header must hold exactly one assertion")
    received = assertions[0]
    signatures = received.findall(f"{{{DS}}}Signature")
    if len(signatures) != 1:
        raise VihfRejected("the VIHF must carry exactly one enveloped signature")
    certificate = _certificate(signatures[0])
    moment = now or clock.now()
    try:
        verify_against_bundle(certificate, bundle=settings.OPENDMP_TRUST_BUNDLE, at=moment)
    except CertificateRejected as exc:
        raise VihfRejected(f"VIHF signing certificate rejected: {exc.message}") from exc
    signed = _signed_assertion(received, certificate)
    if signed is None or signed.tag != f"{{{SAML}}}Assertion" or signed.get("ID") != received.get("ID"):
        raise VihfRejected("the VIHF signature does not cover the assertion")
    skew = dt.timedelta(seconds=settings.OPENDMP_CLOCK_SKEW_SECONDS)
    issued = _parse_time(signed.get("IssueInstant"), "IssueInstant")
    conditions = signed.find(f"{{{SAML}}}Conditions")
    if conditions is None:
        raise VihfRejected("VIHF without Conditions (validity window and audience)")
    not_before = _parse_time(conditions.get("NotBefore"), "NotBefore")
    not_after = _parse_time(conditions.get("NotOnOrAfter"), "NotOnOrAfter")
    if issued > moment + skew or not_before > moment + skew:
        raise VihfRejected("VIHF not yet valid")
    if moment >= not_after + skew:
        raise VihfRejected("VIHF expired")
    if not_after - not_before > MAX_LIFETIME:
        raise VihfRejected("VIHF validity window too long")
    # SAML core 2.5.1.4: the assertion is for us only if every AudienceRestriction names us.
    restrictions = conditions.findall(f"{{{SAML}}}AudienceRestriction")
    if not restrictions or any(
        settings.OPENDMP_VIHF_AUDIENCE
        not in {(a.text or "").strip() for a in restriction.findall(f"{{{SAML}}}Audience")}
        for restriction in restrictions
    ):
        raise VihfRejected("VIHF audience does not name this DMP")
    name_id = signed.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID")
    subject_id = (name_id.text or "").strip() if name_id is not None else ""
    if not subject_id:
        raise VihfRejected("VIHF without Subject/NameID")
    values = _attributes(signed)
    roles = _codes(values, "urn:oasis:names:tc:xacml:2.0:subject:role")
    if not roles or not roles[0][0]:
        raise VihfRejected("VIHF attribute subject:role is missing")
    purposes = _codes(values, "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse")
    try:
        mode = AccessMode(purposes[0][0]) if purposes else AccessMode.NORMAL
    except ValueError as exc:
        raise VihfRejected("unknown VIHF purposeofuse") from exc
    try:
        authentication = AuthenticationMode(_text(values, "Authentification_Mode"))
    except ValueError as exc:
        raise VihfRejected("unknown VIHF Authentification_Mode") from exc
    if authentication not in {
        AuthenticationMode.DIRECT,
        AuthenticationMode.INDIRECT,
        AuthenticationMode.INDIRECT_REINFORCED,
    }:
        raise VihfRejected("unknown VIHF Authentification_Mode")
    patient_cx = _text(values, "urn:oasis:names:tc:xacml:2.0:resource:resource-id", required=False)
    try:
        patient = parse_hl7_ins(patient_cx) if patient_cx else None
    except InvalidIns as exc:
        raise VihfRejected(f"VIHF patient identifier: {exc.message}") from exc
    confidentiality = _text(
        values, "urn:oasis:names:tc:xspa:1.0:resource:patient:hl7:confidentiality-code", required=False
    )
    return VihfFacts(
        assertion_id=signed.get("ID", ""),
        not_on_or_after=not_after,
        certificate_fingerprint=fingerprint_of(certificate),
        subject_id=subject_id,
        subject_name=_text(values, "urn:oasis:names:tc:xspa:1.0:subject:subject-id", required=False),
        profession=roles[0][0],
        specialty=roles[1][0] if len(roles) > 1 else "",
        sector=_text(values, "Secteur_Activite", required=False).split("^", 1)[0],
        structure_id=_text(values, "Identifiant_Structure", required=False),
        patient=patient,
        mode=mode,
        reason=_text(values, "Bris_De_Glace_Motif", required=False),
        authentication=authentication,
        lps_id=_text(values, "LPS_ID"),
        lps_name=_text(values, "LPS_Nom"),
        lps_version=_text(values, "LPS_Version"),
        homologation=_text(values, "LPS_ID_HOMOLOGATION_DMP"),
        secret_connection=confidentiality == "INVISIBLE_REPRESENTANTS_LEGAUX",
    )


def _bound_certificate(facts: VihfFacts) -> Certificate:
    """The registered certificate that signed, owned by the PS or the structure the VIHF names."""
    known = registered_certificate(facts.certificate_fingerprint)
    if known is None:
        raise VihfRejected("the VIHF signing certificate is not registered with the DMP")
    if facts.authentication is AuthenticationMode.DIRECT:
        if known.usage != Certificate.Usage.CPS_SIGN or known.professional is None:
            raise VihfRejected("direct mode requires the signature certificate of a CPS card")
        if known.professional.national_id != facts.subject_id:
            raise VihfRejected("the CPS card does not belong to the VIHF subject")
    else:
        if known.usage != Certificate.Usage.ORG_SIGN or known.structure is None:
            raise VihfRejected("indirect mode requires a structure signature certificate (ORG_SIGN)")
        # The structure's own certificate, or its legal entity's (ADR 0011).
        if not signs_for_structure(known.structure, _named_structure(known, facts)):
            raise VihfRejected("the structure certificate does not belong to the VIHF structure")
    return known


def _named_structure(known: Certificate, facts: VihfFacts) -> Structure | None:
    """The structure the VIHF names: the signing certificate's own, loaded with it, when it is
    that one (a legal entity's certificate names a site, looked up)."""
    if known.structure is not None and known.structure.id_nat == facts.structure_id:
        return known.structure
    return structure_get(facts.structure_id)


# The longest identifier an actor's rights are stored under (Authorisation.grantee_id).
MAX_PERSON_ID: Final = 64


class _Every:
    """Due at most once per `period` in this process, the first time included."""

    def __init__(self, period: dt.timedelta) -> None:
        self._period = period
        self._next: dt.datetime | None = None

    def due(self, now: dt.datetime) -> bool:
        if self._next is not None and now < self._next:
            return False
        self._next = now + self._period
        return True


# Expired ids can no longer be replayed (the window check refuses them): each worker forgets
# them now and then. By time, not by the ids, which the client chooses: ids picked to end as
# the purge's did made every request of a client a DELETE and one more commit.
_FORGET: Final = _Every(dt.timedelta(seconds=30))


def _replayed() -> VihfRejected:
    return VihfRejected("VIHF replayed: this assertion was already used")


def _assertion_use(facts: VihfFacts) -> SingleUse:
    skew = dt.timedelta(seconds=settings.OPENDMP_CLOCK_SKEW_SECONDS)
    seen = SeenAssertion(assertion_id=facts.assertion_id[:128], expires_at=facts.not_on_or_after + skew)
    return SingleUse(seen, constraint=SEEN_ASSERTION_UNIQUE, replayed=_replayed)


def _consume(facts: VihfFacts, *, pending: bool = False) -> SingleUse:
    """The assertion's use, written now unless `pending`; expired ids are forgotten now and then."""
    use = _assertion_use(facts)
    if not pending:
        use.write()
    now = clock.now()
    if _FORGET.due(now):
        _forget_expired(now)
    return use


def use_assertion(caller: Caller) -> None:
    """Consume the assertion of a caller made with `pending_use`, unless an audit event did.

    The channel calls it once the request is handled, before it answers anything: a request
    that wrote no event (a malformed query) or wrote it inside a transaction uses it here.
    Raises VihfRejected if it was used already."""
    if caller.credential_use is not None:
        caller.credential_use.write()  # nothing if an audit event wrote it


def _forget_expired(now: dt.datetime) -> None:
    # One plain statement: the ORM's delete() first collects what to cascade (nothing here).
    expires_at = SeenAssertion._meta.get_field("expires_at")
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {SeenAssertion._meta.db_table} WHERE {expires_at.column} < %s",  # noqa: S608 - model metadata
            [expires_at.get_db_prep_value(now, connection)],
        )


def caller_from_vihf(
    facts: VihfFacts,
    *,
    client_certificate: x509.Certificate | None = None,
    channel: Channel = Channel.XDS,
    pending_use: bool = False,
) -> Caller:
    """Bind the facts to registered identities, check the software, consume the assertion id.

    With `pending_use` (reads only, ADR 0016), the assertion id is consumed by the request's
    first audit event, or by `use_assertion`, which the caller must then call before answering;
    a write consumes it here, before it starts.

    A mode other than normal (break-glass, Centre 15) must name its patient: an emergency opens
    one record, as the PS portal ties it to one, never whichever records the PS then searches."""
    if facts.mode is not AccessMode.NORMAL and facts.patient is None:
        raise VihfRejected(
            f"the access mode {facts.mode.value} requires the VIHF to name the patient (resource-id)"
        )
    try:
        product = software_check(facts.homologation, version=facts.lps_version)
    except UnknownSoftware as exc:
        raise VihfRejected(f"homologation number refused: {exc.message}") from exc
    known = _bound_certificate(facts)
    if client_certificate is not None:
        _check_tls_client(client_certificate, known)
    # In indirect mode the certificate is the VIHF's structure's, or its legal entity's
    # (checked by _bound_certificate): the caller is the site the VIHF names, never the signer.
    structure = _named_structure(known, facts)
    if facts.structure_id and structure is None:
        raise VihfRejected("unknown structure in the VIHF")
    professional: HealthProfessional | None
    if facts.authentication is AuthenticationMode.DIRECT:
        professional = known.professional
        assert professional is not None  # noqa: S101 - guaranteed by _bound_certificate
        # A card proves the person, not the structure: the VIHF may name only one the directory
        # says the PS works in (its authorisations and its SAMU status come with it).
        if structure is not None and not is_affiliated(professional, structure):
            raise VihfRejected("the professional is not affiliated to the VIHF's structure")
        profession, specialty = professional.profession_code, professional.specialty_code
    else:
        # The structure vouches for its staff, and only for them: a person the directory knows
        # acts with their own authorisations, authorship and médecin traitant status, so the
        # structure may name them only while the directory says they work there.
        professional = professional_get(facts.subject_id)
        if professional is not None and (
            not professional.is_active or structure is None or not is_affiliated(professional, structure)
        ):
            raise VihfRejected("the professional is not an active member of the signing structure's staff")
        profession = professional.profession_code if professional else facts.profession
        specialty = professional.specialty_code if professional else facts.specialty
    person_id = facts.subject_id
    if professional is None:
        # Only the structure vouches for a person the directory does not know, so their identity
        # is that structure's: the rights they gain (authorisation, médecin traitant, traces) are
        # not another structure's to claim by naming the same identifier.
        assert structure is not None  # noqa: S101 - indirect mode: the certificate's structure
        person_id = f"{structure.id_nat}/{facts.subject_id}"
        if len(person_id) > MAX_PERSON_ID:
            raise VihfRejected("the VIHF subject identifier is too long")
    use = _consume(facts, pending=pending_use)
    actor = Actor(
        kind=ActorKind.PROFESSIONAL,
        person_id=person_id,
        display_name=professional.display_name if professional else facts.subject_name,
        authentication=facts.authentication,
        profession_code=profession,
        specialty_code=specialty,
        structure_id=structure.id_nat if structure else "",
        structure_name=structure.name if structure else "",
        signer_structure_id=(
            known.structure.id_nat if known.structure is not None and known.structure != structure else ""
        ),
        is_emergency_regulator=bool(
            structure and structure.is_emergency_regulation_centre and profession == "10"
        ),
        secret_connection=facts.secret_connection,
        software=Software(
            identifier=facts.lps_id,
            name=product.name or facts.lps_name,
            version=facts.lps_version,
            profiles=tuple(product.profiles),
        ),
    )
    return Caller(
        actor=actor,
        mode=facts.mode,
        reason=facts.reason,
        channel=channel,
        credential_use=use if pending_use else None,
    )


def tls_client_certificate(request: HttpRequest) -> x509.Certificate | None:
    """The TLS client certificate the trusted proxy forwarded, for `caller_from_vihf`.

    None when no header is configured (no mutual-TLS check). Once it is, every channel that
    turns VIHF facts into a caller (SOAP, the FHIR token endpoint) refuses a request without a
    readable certificate: otherwise the channel that forgot to ask would be the way around it.
    """
    header = settings.OPENDMP_TLS_CLIENT_CERT_HEADER
    if not header:
        return None
    if request.META.get("REMOTE_ADDR") not in settings.OPENDMP_TRUSTED_PROXIES:
        raise VihfRejected("client certificate header from an untrusted peer")
    pem = unquote(request.META.get(header, ""))
    if not pem.strip():
        raise VihfRejected("mutual TLS: no client certificate")
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise VihfRejected("mutual TLS: unreadable client certificate") from exc


def _check_tls_client(certificate: x509.Certificate, signer: Certificate) -> None:
    try:
        verify_against_bundle(
            certificate, bundle=settings.OPENDMP_TRUST_BUNDLE, require_signature_usage=False
        )
    except CertificateRejected as exc:
        raise VihfRejected(f"TLS client certificate rejected: {exc.message}") from exc
    owned = registered_certificate(fingerprint_of(certificate))
    if owned is None:
        raise VihfRejected("TLS client certificate not registered")
    same_owner = (signer.professional_id is not None and owned.professional_id == signer.professional_id) or (
        signer.structure_id is not None and owned.structure_id == signer.structure_id
    )
    if not same_owner or owned.usage not in {Certificate.Usage.CPS_AUTH, Certificate.Usage.ORG_AUTH_CLI}:
        raise VihfRejected("TLS client certificate and VIHF signer differ")
