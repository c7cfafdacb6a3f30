"""VIHF: the signed SAML 2.0 assertion a DMP-compatible software sends with every call.

The software states who acts (PS or structure), for which patient, in which access mode and
under which homologation number, and signs it with the PS's CPS signature key (direct mode)
or the structure's ORG_SIGN key (indirect mode).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, replace

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from lxml import etree
from signxml import methods
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.signer import XMLSigner

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
HL7 = "urn:hl7-org:v3"

ATTR_SUBJECT_ID = "urn:oasis:names:tc:xspa:1.0:subject:subject-id"
ATTR_ROLE = "urn:oasis:names:tc:xacml:2.0:subject:role"
ATTR_PURPOSE = "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"
ATTR_RESOURCE = "urn:oasis:names:tc:xacml:2.0:resource:resource-id"
ATTR_CONFIDENTIALITY = "urn:oasis:names:tc:xspa:1.0:resource:patient:hl7:confidentiality-code"

PROFESSION_SYSTEM = "1.2.250.1.71.1.2.7"  # TRE_G15
SPECIALTY_SYSTEM = "1.2.250.1.71.4.2.5"  # TRE_R38
PURPOSE_SYSTEM = "1.2.250.1.213.1.1.4.248"  # TRE_R248
SECTOR_SYSTEM = "1.2.250.1.71.4.2.4"  # TRE_R02


@dataclass(frozen=True)
class VihfClaims:
    """What the software asserts. `patient_ins` is the CX form `INS^^^&OID&ISO^NH`."""

    subject_id: str
    subject_name: str
    profession: str
    lps_id: str
    lps_name: str
    lps_version: str
    homologation: str
    specialty: str = ""
    sector: str = "SA07"
    structure_id: str = ""
    patient_ins: str = ""
    purpose_of_use: str = "normal"
    authentication_mode: str = "DIRECTE"
    audience: str = "urn:dmp"
    secret_connection: bool = False
    # Justification of a bris_de_glace access (OpenDMP profile attribute, shown to the patient).
    break_glass_reason: str = ""
    vihf_version: str = "3.0"

    def with_patient(self, patient_ins: str) -> VihfClaims:
        return replace(self, patient_ins=patient_ins)

    def with_mode(self, purpose_of_use: str) -> VihfClaims:
        return replace(self, purpose_of_use=purpose_of_use)


def _time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _attribute(parent: etree._Element, name: str, *values: str) -> etree._Element:
    attribute = etree.SubElement(parent, f"{{{SAML}}}Attribute", Name=name)
    for value in values:
        etree.SubElement(attribute, f"{{{SAML}}}AttributeValue").text = value
    return attribute


def _coded_attribute(parent: etree._Element, name: str, tag: str, codes: list[tuple[str, str]]) -> None:
    attribute = etree.SubElement(parent, f"{{{SAML}}}Attribute", Name=name)
    for code, system in codes:
        value = etree.SubElement(attribute, f"{{{SAML}}}AttributeValue")
        coded = etree.SubElement(value, f"{{{HL7}}}{tag}", nsmap={"hl7": HL7})
        coded.set("code", code)
        coded.set("codeSystem", system)
        coded.set(f"{{{XSI}}}type", "CE")


def build_assertion(
    claims: VihfClaims,
    *,
    certificate: x509.Certificate,
    now: dt.datetime | None = None,
    lifetime: dt.timedelta = dt.timedelta(minutes=5),
    assertion_id: str | None = None,
) -> etree._Element:
    """The unsigned assertion, with a signature placeholder right after the Issuer (SAML order)."""
    moment = now or dt.datetime.now(dt.UTC)
    assertion = etree.Element(
        f"{{{SAML}}}Assertion",
        nsmap={"saml": SAML, "xsi": XSI},
        ID=assertion_id or f"_{uuid.uuid4()}",
        IssueInstant=_time(moment),
        Version="2.0",
    )
    issuer = etree.SubElement(
        assertion, f"{{{SAML}}}Issuer", Format="urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"
    )
    issuer.text = certificate.subject.rfc4514_string()
    etree.SubElement(assertion, f"{{{DS}}}Signature", Id="placeholder", nsmap={"ds": DS})
    subject = etree.SubElement(assertion, f"{{{SAML}}}Subject")
    etree.SubElement(subject, f"{{{SAML}}}NameID").text = claims.subject_id
    conditions = etree.SubElement(
        assertion,
        f"{{{SAML}}}Conditions",
        NotBefore=_time(moment),
        NotOnOrAfter=_time(moment + lifetime),
    )
    restriction = etree.SubElement(conditions, f"{{{SAML}}}AudienceRestriction")
    etree.SubElement(restriction, f"{{{SAML}}}Audience").text = claims.audience
    authn = etree.SubElement(assertion, f"{{{SAML}}}AuthnStatement", AuthnInstant=_time(moment))
    context = etree.SubElement(authn, f"{{{SAML}}}AuthnContext")
    etree.SubElement(context, f"{{{SAML}}}AuthnContextClassRef").text = (
        "urn:oasis:names:tc:SAML:2.0:ac:classes:X509"
        if claims.authentication_mode == "DIRECTE"
        else "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
    )
    statement = etree.SubElement(assertion, f"{{{SAML}}}AttributeStatement")
    _attribute(statement, "VIHF_Version", claims.vihf_version)
    _attribute(statement, "Authentification_Mode", claims.authentication_mode)
    _attribute(statement, ATTR_SUBJECT_ID, claims.subject_name)
    roles = [(claims.profession, PROFESSION_SYSTEM)]
    if claims.specialty:
        roles.append((claims.specialty, SPECIALTY_SYSTEM))
    _coded_attribute(statement, ATTR_ROLE, "Role", roles)
    _attribute(statement, "Secteur_Activite", f"{claims.sector}^{SECTOR_SYSTEM}")
    if claims.structure_id:
        _attribute(statement, "Identifiant_Structure", claims.structure_id)
    _coded_attribute(statement, ATTR_PURPOSE, "PurposeOfUse", [(claims.purpose_of_use, PURPOSE_SYSTEM)])
    if claims.patient_ins:
        _attribute(statement, ATTR_RESOURCE, claims.patient_ins)
    if claims.break_glass_reason:
        _attribute(statement, "Bris_De_Glace_Motif", claims.break_glass_reason)
    _attribute(statement, "Ressource_URN", "urn:dmp")
    if claims.secret_connection:
        _attribute(statement, ATTR_CONFIDENTIALITY, "INVISIBLE_REPRESENTANTS_LEGAUX")
    _attribute(statement, "LPS_ID", claims.lps_id)
    _attribute(statement, "LPS_Nom", claims.lps_name)
    _attribute(statement, "LPS_Version", claims.lps_version)
    _attribute(statement, "LPS_ID_HOMOLOGATION_DMP", claims.homologation)
    return assertion


def sign_assertion(
    assertion: etree._Element, *, key: RSAPrivateKey, certificate: x509.Certificate
) -> etree._Element:
    """Enveloped RSA-SHA256 signature over the assertion (exclusive c14n), certificate in KeyInfo."""
    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signer.namespaces = {"ds": DS}
    signed: etree._Element = signer.sign(
        assertion,
        key=key,
        cert=[certificate],
        reference_uri="#" + assertion.get("ID", ""),
        id_attribute="ID",
    )
    return signed


def signed_vihf(
    claims: VihfClaims,
    *,
    key: RSAPrivateKey,
    certificate: x509.Certificate,
    now: dt.datetime | None = None,
    lifetime: dt.timedelta = dt.timedelta(minutes=5),
) -> etree._Element:
    assertion = build_assertion(claims, certificate=certificate, now=now, lifetime=lifetime)
    return sign_assertion(assertion, key=key, certificate=certificate)
