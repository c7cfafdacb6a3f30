"""Reading a CI-SIS CDA header into the facts XDS metadata are derived from.

The mapping follows the ANS rules (CDA header -> XDS DocumentEntry): uniqueId from
ClinicalDocument/id, typeCode from code, classCode from the typeCode -> classCode table,
formatCode from the templateIds (or the media type of a level 1 body), healthcare facility
from the encompassing encounter, practice setting from the performer's organisation, service
times from documentationOf/serviceEvent, patient from recordTarget.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Final

from django.utils.translation import gettext
from lxml import etree

from dmp.common.errors import ErrorCode, Problem, ValidationFailed
from dmp.common.xml import parse_xml
from dmp.terminology import class_for_type

HL7: Final = "urn:hl7-org:v3"
NS: Final = {"h": HL7}
INS_OIDS: Final = frozenset(
    {
        "1.2.250.1.213.1.4.8",
        "1.2.250.1.213.1.4.9",
        "1.2.250.1.213.1.4.10",
        "1.2.250.1.213.1.4.11",
        "1.2.250.1.213.1.4.2",
    }
)
TEMPLATE_LEVEL_1: Final = "1.3.6.1.4.1.19376.1.2.20"
FORMAT_SYSTEM_IHE: Final = "1.3.6.1.4.1.19376.1.2.3"
FORMAT_SYSTEM_ASIP: Final = "1.2.250.1.213.1.1.4.2.282"

# formatCode of the CI-SIS and IHE content profiles, by the profile's document templateId.
_PROFILE_FORMATS: Final = {
    "1.3.6.1.4.1.19376.1.3.3": ("urn:ihe:lab:xd-lab:2008", FORMAT_SYSTEM_IHE),
    "1.2.250.1.213.1.1.1.2.1.1": ("urn:asip:ci-sis:avk:2009", FORMAT_SYSTEM_ASIP),
    "1.2.250.1.213.1.1.1.2.1.2": ("urn:asip:ci-sis:tap:2009", FORMAT_SYSTEM_ASIP),
    "1.2.250.1.213.1.1.1.2.1.3": ("urn:asip:ci-sis:dci:2009", FORMAT_SYSTEM_ASIP),
    "1.2.250.1.213.1.1.1.2.1.4": ("urn:asip:ci-sis:psc:2009", FORMAT_SYSTEM_ASIP),
    "1.2.250.1.213.1.1.1.2.1.5": ("urn:asip:ci-sis:ppv:2009", FORMAT_SYSTEM_ASIP),
    "1.2.250.1.213.1.1.1.10": ("urn:ihe:pcc:ic:2009", FORMAT_SYSTEM_IHE),
    "1.2.250.1.213.1.1.1.13": ("urn:asip:ci-sis:vsm:2012", FORMAT_SYSTEM_ASIP),
    "1.2.250.1.213.1.1.1.5.1": ("urn:ihe:qrph:hbs:2009", FORMAT_SYSTEM_IHE),
    "1.2.250.1.213.1.1.1.5.2": ("urn:asip:ci-sis:cs9:2012", FORMAT_SYSTEM_ASIP),
    "1.2.250.1.213.1.1.1.9": ("urn:asip:ci-sis:idap:2011", FORMAT_SYSTEM_ASIP),
    "1.2.250.1.213.1.1.1.8": ("urn:asip:ci-sis:frcp:2011", FORMAT_SYSTEM_ASIP),
    "1.2.250.1.213.1.1.1.3.1": ("urn:asip:ci-sis:crh:2009", FORMAT_SYSTEM_ASIP),
    "1.3.6.1.4.1.19376.1.8.1.1.1": ("urn:ihe:pat:apsr:all:2010", FORMAT_SYSTEM_IHE),
}
# The level 1 (XDS-SD) bodies of JDV_J10, by the media type of nonXMLBody/text.
FORMAT_BY_MEDIA_TYPE: Final = {
    "application/pdf": ("urn:ihe:iti:xds-sd:pdf:2008", FORMAT_SYSTEM_IHE),
    "text/plain": ("urn:ihe:iti:xds-sd:text:2008", FORMAT_SYSTEM_IHE),
    "image/jpeg": ("urn:ihe:iti-fr:xds-sd:jpeg:2010", FORMAT_SYSTEM_IHE),
    "image/tiff": ("urn:ihe:iti-fr:xds-sd:tiff:2010", FORMAT_SYSTEM_IHE),
    "text/rtf": ("urn:ihe:iti-fr:xds-sd:rtf:2010", FORMAT_SYSTEM_IHE),
}
# Organ-specific anatomic pathology templates 1.3.6.1.4.1.19376.1.8.1.1.2.N.
_APSR_ORGANS: Final = {
    1: "breast",
    2: "colon",
    3: "prostate",
    4: "thyroid",
    5: "lung",
    6: "skin",
    7: "kidney",
    9: "endometrium",
    10: "ovary",
    11: "esophagus",
    12: "stomach",
    13: "liver",
    14: "pancreas",
    15: "testis",
    16: "urinary_bladder",
    17: "lip_oral_cavity",
    18: "pharynx",
    19: "salivary_gland",
    20: "larynx",
}
FORMAT_BY_TEMPLATE: Final = _PROFILE_FORMATS | {
    f"1.3.6.1.4.1.19376.1.8.1.1.2.{number}": (f"urn:ihe:pat:apsr:{organ}:2010", FORMAT_SYSTEM_IHE)
    for number, organ in _APSR_ORGANS.items()
}

_TS_RE = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?$")


def parse_ts(value: str) -> dt.datetime | None:
    """HL7 TS (YYYY[MM[DD[HH[MM[SS[.f]]]]]][+/-ZZZZ]) to an aware datetime (UTC when no zone)."""
    match = _TS_RE.match(value.strip()) if value else None
    if match is None:
        return None
    year, month, day, hour, minute, second, zone = match.groups()
    offset = dt.UTC
    if zone:
        minutes = int(zone[1:3]) * 60 + int(zone[3:5])
        offset = dt.timezone(dt.timedelta(minutes=minutes if zone[0] == "+" else -minutes))
    try:
        return dt.datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=offset,
        )
    except ValueError:
        return None


@dataclass(frozen=True)
class Code:
    code: str
    system: str = ""
    display: str = ""


@dataclass(frozen=True)
class CdaAuthorInfo:
    person_id: str
    id_root: str
    family_name: str
    given_name: str
    code: Code | None  # profession / specialty (G15_10/SM26 in TRE_G15-R38)
    structure_id: str
    structure_name: str


@dataclass(frozen=True)
class CdaHeader:
    unique_id: str
    set_id: str
    version: str
    title: str
    type_code: Code
    class_code: str | None
    format_code: Code | None
    confidentiality: Code
    language: str
    effective_time: dt.datetime | None
    effective_time_raw: str
    service_start: dt.datetime | None
    service_stop: dt.datetime | None
    authors: tuple[CdaAuthorInfo, ...]
    facility_type: Code | None
    practice_setting: Code | None
    event_codes: tuple[Code, ...]
    patient_ids: tuple[tuple[str, str], ...]  # (root, extension)
    patient_family_name: str
    patient_given_names: str
    patient_birth_time: str
    patient_sex: str
    replaced_unique_id: str
    legal_authenticator_id: str
    template_ids: tuple[str, ...]
    non_xml_media_type: str = ""
    problems: tuple[Problem, ...] = field(default=())

    @property
    def patient_ins(self) -> tuple[str, str] | None:
        for root, extension in self.patient_ids:
            if root in INS_OIDS and extension:
                return root, extension
        return None


def _code(element: etree._Element | None) -> Code | None:
    if element is None or not element.get("code"):
        return None
    return Code(element.get("code", ""), element.get("codeSystem", ""), element.get("displayName", ""))


def _given_names(name: etree._Element | None) -> str:
    """The list of given names: CI-SIS repeats the first one in a qualified `given` (BR / CL),
    which must not be read twice."""
    if name is None:
        return ""
    givens = name.findall("h:given", NS)
    plain = [g for g in givens if not g.get("qualifier")]
    return " ".join(_text(g) for g in (plain or givens[:1]))


def _text(element: etree._Element | None) -> str:
    return " ".join("".join(str(t) for t in element.itertext()).split()) if element is not None else ""


def _ii(element: etree._Element | None) -> str:
    if element is None:
        return ""
    root, extension = element.get("root", ""), element.get("extension", "")
    return f"{root}^{extension}" if extension else root


def format_of(root: etree._Element) -> Code | None:
    """formatCode the CI-SIS derives from the document: level 1 by media type, else by templateId."""
    text = root.find("h:component/h:nonXMLBody/h:text", NS)
    if text is not None:
        found = FORMAT_BY_MEDIA_TYPE.get(text.get("mediaType", ""))
        return Code(*found) if found else None
    for template in root.findall("h:templateId", NS):
        found = FORMAT_BY_TEMPLATE.get(template.get("root", ""))
        if found:
            return Code(*found)
    return None


def level1_content(text: etree._Element) -> bytes | None:
    """The bytes of a level 1 body (nonXMLBody/text), None when they cannot be read.

    A B64 body may be wrapped over lines (whitespace is dropped before a strict decoding);
    any other representation is text kept exactly as written.
    """
    if text.get("representation") != "B64":
        return (text.text or "").encode()
    try:
        return base64.b64decode("".join((text.text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        return None


AUTO_PRESENTABLE_CONTENT: Final = "{urn:asip-sante:ci-sis}Contenu"
# Text that people read (the narrative, names, titles) is bounded as libxml2 bounds any text node
# by default; inline base64 (an element with representation="B64": a level 1 body, a media
# value) may fill the document size limit, which is why the hardened parser accepts huge text.
MAX_TEXT_CHARS: Final = 10_000_000
_OVERSIZED_TEXT: Final = etree.XPath(
    f"boolean(//text()[not(parent::*[@representation='B64'])][string-length(.) > {MAX_TEXT_CHARS}])"
)


def clinical_document(data: bytes) -> etree._Element:
    """The ClinicalDocument element, also inside a CI-SIS "auto-présentable" XSL wrapper."""
    root = parse_xml(data)
    # No text node can be longer than the document; most documents skip the probe.
    if len(data) > MAX_TEXT_CHARS and _OVERSIZED_TEXT(root):
        raise ValidationFailed(
            [
                Problem(
                    ErrorCode.INVALID,
                    gettext("un nœud texte de plus de %(size)d caractères est refusé")
                    % {"size": MAX_TEXT_CHARS},
                    "/",
                )
            ]
        )
    if root.tag == "{http://www.w3.org/1999/XSL/Transform}stylesheet":
        wrapped = root.find(f".//{AUTO_PRESENTABLE_CONTENT}/{{{HL7}}}ClinicalDocument")
        if wrapped is not None:
            return wrapped
    if root.tag != f"{{{HL7}}}ClinicalDocument":
        raise ValidationFailed(
            [Problem(ErrorCode.INVALID, gettext("ce n'est pas un ClinicalDocument HL7 CDA R2"), "/")]
        )
    return root


def header_of(root: etree._Element) -> CdaHeader:
    code = _code(root.find("h:code", NS)) or Code("")
    assigned = root.findall("h:author/h:assignedAuthor", NS)
    authors = []
    for author in assigned:
        ident = author.find("h:id", NS)
        person = author.find("h:assignedPerson/h:name", NS)
        organisation = author.find("h:representedOrganization", NS)
        authors.append(
            CdaAuthorInfo(
                person_id=ident.get("extension", "") if ident is not None else "",
                id_root=ident.get("root", "") if ident is not None else "",
                family_name=_text(person.find("h:family", NS)) if person is not None else "",
                given_name=_text(person.find("h:given", NS)) if person is not None else "",
                code=_code(author.find("h:code", NS)),
                structure_id=_attribute(organisation, "h:id", "extension"),
                structure_name=_text(organisation.find("h:name", NS)) if organisation is not None else "",
            )
        )
    event = root.find("h:documentationOf/h:serviceEvent", NS)
    performer_org = root.find(
        "h:documentationOf/h:serviceEvent/h:performer/h:assignedEntity/h:representedOrganization"
        "/h:standardIndustryClassCode",
        NS,
    )
    facility = root.find("h:componentOf/h:encompassingEncounter/h:location/h:healthCareFacility/h:code", NS)
    patient_role = root.find("h:recordTarget/h:patientRole", NS)
    patient = patient_role.find("h:patient", NS) if patient_role is not None else None
    name = patient.find("h:name", NS) if patient is not None else None
    related = root.find("h:relatedDocument[@typeCode='RPLC']/h:parentDocument/h:id", NS)
    effective_raw = _attribute(root, "h:effectiveTime", "value")
    text = root.find("h:component/h:nonXMLBody/h:text", NS)
    return CdaHeader(
        unique_id=_ii(root.find("h:id", NS)),
        set_id=_ii(root.find("h:setId", NS)),
        version=_attribute(root, "h:versionNumber", "value"),
        title=_text(root.find("h:title", NS)),
        type_code=code,
        class_code=class_for_type(code.code) if code.code else None,
        format_code=format_of(root),
        confidentiality=_code(root.find("h:confidentialityCode", NS)) or Code(""),
        language=_attribute(root, "h:languageCode", "code"),
        effective_time=parse_ts(effective_raw),
        effective_time_raw=effective_raw,
        service_start=parse_ts(_attribute(event, "h:effectiveTime/h:low", "value")),
        service_stop=parse_ts(_attribute(event, "h:effectiveTime/h:high", "value")),
        authors=tuple(authors),
        facility_type=_code(facility),
        practice_setting=_code(performer_org),
        event_codes=tuple(
            c for c in (_code(e) for e in root.findall("h:documentationOf/h:serviceEvent/h:code", NS)) if c
        ),
        patient_ids=tuple(
            (i.get("root", ""), i.get("extension", ""))
            for i in (patient_role.findall("h:id", NS) if patient_role is not None else [])
        ),
        patient_family_name=_text(name.find("h:family", NS)) if name is not None else "",
        patient_given_names=_given_names(name),
        patient_birth_time=_attribute(patient, "h:birthTime", "value"),
        patient_sex=_attribute(patient, "h:administrativeGenderCode", "code"),
        replaced_unique_id=_ii(related),
        legal_authenticator_id=_attribute(root, "h:legalAuthenticator/h:assignedEntity/h:id", "extension"),
        template_ids=tuple(t.get("root", "") for t in root.findall("h:templateId", NS)),
        non_xml_media_type=text.get("mediaType", "") if text is not None else "",
    )


def _attribute(element: etree._Element | None, path: str, name: str) -> str:
    if element is None:
        return ""
    found = element.find(path, NS)
    return found.get(name, "") if found is not None else ""


def extract_header(data: bytes) -> CdaHeader:
    """Parse (hardened) and read the header of a CDA document."""
    return header_of(clinical_document(data))
