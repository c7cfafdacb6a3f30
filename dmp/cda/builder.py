"""Building CI-SIS CDA R2 documents from Python objects.

Used by the project's fixtures, the demo population, the benchmarks and the vendor dev kit.
The header follows the CI-SIS structure of the ANS samples (realmCode FR, HL7 France and
CI-SIS conformance templates, INS in recordTarget, author with its G15 profession code and
structure, custodian, legal authenticator, documentationOf/serviceEvent with the practice
setting, componentOf/encompassingEncounter with the facility type). Bodies are either
structured sections with narrative blocks (paragraphs, lists, tables) or, at level 1, an
embedded PDF (IHE XDS-SD).
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from lxml import etree

from dmp.terminology import value_set

HL7 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
LOINC = "2.16.840.1.113883.6.1"
TRE_A05 = "1.2.250.1.213.1.1.4.12"
PS_ID_ROOT = "1.2.250.1.71.4.2.1"
STRUCTURE_ID_ROOT = "1.2.250.1.71.4.2.2"
G15_SYSTEM = "1.2.250.1.213.1.1.4.5"
FACILITY_SYSTEM = "1.2.250.1.71.4.2.4"
PRACTICE_SYSTEM = "1.2.250.1.213.1.1.4.9"
CONFIDENTIALITY_SYSTEM = "2.16.840.1.113883.5.25"
GENDER_SYSTEM = "2.16.840.1.113883.5.1"

TEMPLATE_HL7_FRANCE = "2.16.840.1.113883.2.8.2.1"
TEMPLATE_CI_SIS = "1.2.250.1.213.1.1.1.1"
TEMPLATE_XDS_SD = "1.3.6.1.4.1.19376.1.2.20"

FORMAT_PDF = "urn:ihe:iti:xds-sd:pdf:2008"
FORMAT_TEXT = "urn:ihe:iti:xds-sd:text:2008"
FORMAT_STRUCTURED = "urn:asipSante:modelesHorsProfils:2011"


@dataclass(frozen=True)
class CdaAddress:
    street: str = ""
    postal_code: str = ""
    city: str = ""
    country: str = "FRANCE"


@dataclass(frozen=True)
class CdaPatient:
    ins: str
    ins_root: str  # INS OID: 1.2.250.1.213.1.4.8 (NIR), .9 (NIA), .10/.11 (test)
    family_name: str
    given_names: str
    birth_date: dt.date
    sex: str  # M / F / U
    address: CdaAddress | None = None


@dataclass(frozen=True)
class CdaOrganization:
    id_nat: str
    name: str
    facility_type_code: str = "SA07"
    practice_setting_code: str = "AMBULATOIRE"


@dataclass(frozen=True)
class CdaAuthor:
    national_id: str  # PS_IdNat, e.g. "8" + RPPS
    family_name: str
    given_name: str
    profession_code: str  # TRE_G15, e.g. "10"
    specialty_code: str = ""  # TRE_R38, e.g. "SM26"
    organization: CdaOrganization = field(default_factory=lambda: CdaOrganization("", ""))
    prefix: str = ""


@dataclass(frozen=True)
class CdaSection:
    title: str
    paragraphs: tuple[str, ...] = ()
    items: tuple[str, ...] = ()
    table: tuple[tuple[str, ...], ...] = ()  # first row = header
    code: str = ""  # LOINC section code


@dataclass(frozen=True)
class CdaDocumentSpec:
    id_root: str
    type_code: str
    title: str
    effective_time: dt.datetime
    patient: CdaPatient
    author: CdaAuthor
    id_extension: str = ""
    set_id_root: str = ""
    version: int = 1
    confidentiality: str = "N"
    language: str = "fr-FR"
    service_start: dt.datetime | None = None
    service_stop: dt.datetime | None = None
    sections: tuple[CdaSection, ...] = ()
    pdf: bytes | None = None  # level 1 body
    text_body: str | None = None  # level 1 plain-text body
    replaces_id: str = ""  # ClinicalDocument/id of the replaced version (RPLC)
    extra_template_ids: tuple[str, ...] = ()

    @property
    def unique_id(self) -> str:
        """The XDS uniqueId this document gets (root, or root^extension)."""
        return f"{self.id_root}^{self.id_extension}" if self.id_extension else self.id_root

    @property
    def format_code(self) -> str:
        if self.pdf is not None:
            return FORMAT_PDF
        if self.text_body is not None:
            return FORMAT_TEXT
        return FORMAT_STRUCTURED


def _hl7_time(moment: dt.datetime | dt.date) -> str:
    if isinstance(moment, dt.datetime):
        if moment.tzinfo is None:
            return moment.strftime("%Y%m%d%H%M%S")
        return moment.strftime("%Y%m%d%H%M%S%z")
    return moment.strftime("%Y%m%d")


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{HL7}}}{tag}", {k.rstrip("_"): v for k, v in attributes.items()})
    if text is not None:
        element.text = text
    return element


def _type_system(type_code: str) -> str:
    found = value_set("type_code").get(type_code)
    return found.system if found else LOINC


def _display(value_set_name: str, code: str) -> str:
    return value_set(value_set_name).display(code)


def _address(parent: etree._Element, address: CdaAddress | None) -> None:
    if address is None:
        _sub(parent, "addr", nullFlavor="NASK")
        return
    addr = _sub(parent, "addr")
    if address.street:
        _sub(addr, "streetAddressLine", address.street)
    if address.postal_code:
        _sub(addr, "postalCode", address.postal_code)
    if address.city:
        _sub(addr, "city", address.city)
    if address.country:
        _sub(addr, "country", address.country)


def _organization(parent: etree._Element, tag: str, organization: CdaOrganization) -> etree._Element:
    element = _sub(parent, tag)
    _sub(element, "id", root=STRUCTURE_ID_ROOT, extension=organization.id_nat)
    _sub(element, "name", organization.name)
    return element


def _author_code(author: CdaAuthor) -> tuple[str, str]:
    code = f"G15_{author.profession_code}" + (f"/{author.specialty_code}" if author.specialty_code else "")
    display = _display("author_specialty", code)
    return code, display if display != code else ""


def _person_name(parent: etree._Element, author: CdaAuthor) -> None:
    person = _sub(parent, "assignedPerson")
    name = _sub(person, "name")
    if author.prefix:
        _sub(name, "prefix", author.prefix)
    _sub(name, "given", author.given_name)
    _sub(name, "family", author.family_name)


def _header(root: etree._Element, spec: CdaDocumentSpec) -> None:
    _sub(root, "realmCode", code="FR")
    _sub(root, "typeId", root="2.16.840.1.113883.1.3", extension="POCD_HD000040")
    _sub(root, "templateId", root=TEMPLATE_HL7_FRANCE)
    _sub(root, "templateId", root=TEMPLATE_CI_SIS)
    if spec.pdf is not None or spec.text_body is not None:
        _sub(root, "templateId", root=TEMPLATE_XDS_SD)
    for template in spec.extra_template_ids:
        _sub(root, "templateId", root=template)
    if spec.id_extension:
        _sub(root, "id", root=spec.id_root, extension=spec.id_extension)
    else:
        _sub(root, "id", root=spec.id_root)
    _sub(
        root,
        "code",
        code=spec.type_code,
        displayName=_display("type_code", spec.type_code),
        codeSystem=_type_system(spec.type_code),
    )
    _sub(root, "title", spec.title)
    _sub(root, "effectiveTime", value=_hl7_time(spec.effective_time))
    _sub(
        root,
        "confidentialityCode",
        code=spec.confidentiality,
        displayName=_display("confidentiality", spec.confidentiality),
        codeSystem=CONFIDENTIALITY_SYSTEM,
    )
    _sub(root, "languageCode", code=spec.language)
    _sub(root, "setId", root=spec.set_id_root or spec.id_root)
    _sub(root, "versionNumber", value=str(spec.version))

    patient = spec.patient
    role = _sub(_sub(root, "recordTarget"), "patientRole")
    _sub(role, "id", extension=patient.ins, root=patient.ins_root)
    _address(role, patient.address)
    person = _sub(role, "patient", classCode="PSN")
    name = _sub(person, "name")
    _sub(name, "family", patient.family_name.upper(), qualifier="BR")
    _sub(name, "given", patient.given_names.upper())
    _sub(name, "given", patient.given_names.split(" ")[0].upper(), qualifier="BR")
    _sub(person, "administrativeGenderCode", code=patient.sex, codeSystem=GENDER_SYSTEM)
    _sub(person, "birthTime", value=_hl7_time(patient.birth_date))

    author = spec.author
    author_element = _sub(root, "author")
    _sub(author_element, "time", value=_hl7_time(spec.effective_time))
    assigned = _sub(author_element, "assignedAuthor")
    _sub(assigned, "id", root=PS_ID_ROOT, extension=author.national_id)
    code, display = _author_code(author)
    _sub(assigned, "code", code=code, displayName=display, codeSystem=G15_SYSTEM)
    _sub(assigned, "addr", nullFlavor="NASK")
    _person_name(assigned, author)
    _organization(assigned, "representedOrganization", author.organization)

    custodian = _sub(_sub(root, "custodian"), "assignedCustodian")
    _organization(custodian, "representedCustodianOrganization", author.organization)

    legal = _sub(root, "legalAuthenticator")
    _sub(legal, "time", value=_hl7_time(spec.effective_time))
    _sub(legal, "signatureCode", code="S")
    entity = _sub(legal, "assignedEntity")
    _sub(entity, "id", root=PS_ID_ROOT, extension=author.national_id)
    _person_name(entity, author)

    event = _sub(_sub(root, "documentationOf"), "serviceEvent")
    _sub(event, "code", code=spec.type_code, displayName=spec.title, codeSystem=_type_system(spec.type_code))
    times = _sub(event, "effectiveTime")
    _sub(times, "low", value=_hl7_time(spec.service_start or spec.effective_time))
    _sub(times, "high", value=_hl7_time(spec.service_stop or spec.service_start or spec.effective_time))
    performer = _sub(_sub(event, "performer", typeCode="PRF"), "assignedEntity")
    _sub(performer, "id", root=PS_ID_ROOT, extension=author.national_id)
    organization = _organization(performer, "representedOrganization", author.organization)
    setting = author.organization.practice_setting_code
    _sub(
        organization,
        "standardIndustryClassCode",
        code=setting,
        displayName=_display("practice_setting", setting),
        codeSystem=PRACTICE_SYSTEM,
    )

    if spec.replaces_id:
        related = _sub(root, "relatedDocument", typeCode="RPLC")
        parent = _sub(related, "parentDocument")
        root_part, _, extension = spec.replaces_id.partition("^")
        if extension:
            _sub(parent, "id", root=root_part, extension=extension)
        else:
            _sub(parent, "id", root=root_part)

    encounter = _sub(_sub(root, "componentOf"), "encompassingEncounter")
    _sub(_sub(encounter, "effectiveTime"), "low", value=_hl7_time(spec.service_start or spec.effective_time))
    facility = _sub(_sub(encounter, "location"), "healthCareFacility")
    facility_code = author.organization.facility_type_code
    _sub(
        facility,
        "code",
        code=facility_code,
        displayName=_display("healthcare_facility_type", facility_code),
        codeSystem=FACILITY_SYSTEM,
    )


def _narrative(section: etree._Element, content: CdaSection) -> None:
    text = _sub(section, "text")
    for paragraph in content.paragraphs:
        _sub(text, "paragraph", paragraph)
    if content.items:
        listing = _sub(text, "list")
        for item in content.items:
            _sub(listing, "item", item)
    if content.table:
        table = _sub(text, "table", border="1")
        head = _sub(_sub(table, "thead"), "tr")
        for cell in content.table[0]:
            _sub(head, "th", cell)
        body = _sub(table, "tbody")
        for row in content.table[1:]:
            tr = _sub(body, "tr")
            for cell in row:
                _sub(tr, "td", cell)


def _body(root: etree._Element, spec: CdaDocumentSpec) -> None:
    component = _sub(root, "component")
    if spec.pdf is not None or spec.text_body is not None:
        body = _sub(component, "nonXMLBody")
        if spec.pdf is not None:
            _sub(
                body,
                "text",
                base64.b64encode(spec.pdf).decode("ascii"),
                mediaType="application/pdf",
                representation="B64",
            )
        else:
            text_bytes = (spec.text_body or "").encode("utf-8")
            _sub(
                body,
                "text",
                base64.b64encode(text_bytes).decode("ascii"),
                mediaType="text/plain",
                representation="B64",
            )
        return
    structured = _sub(component, "structuredBody")
    for content in spec.sections or (CdaSection(title=spec.title, paragraphs=("",)),):
        section = _sub(_sub(structured, "component"), "section")
        if content.code:
            _sub(section, "code", code=content.code, codeSystem=LOINC)
        _sub(section, "title", content.title)
        _narrative(section, content)


def build_cda(spec: CdaDocumentSpec) -> bytes:
    """Serialise `spec` as a CDA R2 document (UTF-8 bytes with an XML declaration)."""
    root = etree.Element(f"{{{HL7}}}ClinicalDocument", nsmap={None: HL7, "xsi": XSI})  # type: ignore[dict-item]
    _header(root, spec)
    _body(root, spec)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def simple_pdf(title: str, lines: Sequence[str], *, image: bytes | None = None) -> bytes:
    """A small PDF with a title and lines of text (level 1 bodies, tests, demo), and optionally
    an image (JPEG, copied as is: the caller checks it) on a page of its own."""
    import io

    from fpdf import FPDF  # imported here: only PDF producers need it loaded

    pdf = FPDF()
    pdf.set_creation_date(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))  # reproducible bytes
    pdf.add_page()
    font = _unicode_font(pdf)
    pdf.set_font(font, size=14)
    pdf.multi_cell(0, 8, _pdf_text(title, font), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(font, size=11)
    for line in lines:
        pdf.multi_cell(0, 6, _pdf_text(line, font), new_x="LMARGIN", new_y="NEXT")
    if image is not None:
        pdf.add_page()
        pdf.image(
            io.BytesIO(image), x=pdf.l_margin, y=pdf.t_margin, w=pdf.epw, h=pdf.eph, keep_aspect_ratio=True
        )
    return bytes(pdf.output())


_DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def _unicode_font(pdf: object) -> str:
    from pathlib import Path

    if Path(_DEJAVU).exists():
        pdf.add_font("DejaVu", fname=_DEJAVU)  # type: ignore[attr-defined]
        return "DejaVu"
    return "Helvetica"


def _pdf_text(text: str, font: str) -> str:
    if font != "Helvetica":
        return text
    # Core fonts are Latin-1 only: keep French accents, replace the rest.
    return (
        text.replace("’", "'")
        .replace("–", "-")
        .replace("œ", "oe")
        .encode("latin-1", "replace")
        .decode("latin-1")
    )
