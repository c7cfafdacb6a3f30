"""Restitution: the whole record as an IHE XDM package (ZIP) and a readable PDF summary.

XDM layout (ITI TF-1 §16 / TF-3 §4.3): IHE_XDM/SUBSET01/METADATA.XML (ebRIM 3.0
SubmitObjectsRequest describing every document, with the URI of its file), the documents
(DOC00001.XML ...), INDEX.HTM and README.TXT at the root; OpenDMP adds TRACES.CSV (the
record's access history), EXPRESSION.TXT (the personal expression space) and SIGNATURES/ (the
kept XAdES signature of each lot whose every document is exported).

The channel `dmp.ihe.xds.ebrim` builds the same ebRIM objects, but portals may not import
another channel (import contract), so the few elements needed are written here.
"""

from __future__ import annotations

import csv
import html
import io
import tempfile
import uuid
import zipfile
from dataclasses import dataclass
from typing import IO, Final

from django.conf import settings
from fpdf import FPDF
from lxml import etree

from dmp.access.actors import Caller
from dmp.access.policy import Action, DocumentStatus
from dmp.audit.actions import AuditAction
from dmp.common import clock
from dmp.documents.models import DocumentEntry
from dmp.documents.selectors import (
    document_retrieve,
    lot_signatures_shown,
    record_contents,
    record_traces_shown,
)
from dmp.records.models import ExpressionSpace, Record, TrustedPerson
from dmp.records.selectors import authorisations_of_record
from dmp.records.services import record_read

from .presentation import action_label

RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
SUBSET = "IHE_XDM/SUBSET01"
# Outside IHE_XDM/: the lots' signatures are proofs kept with the record, not documents of it.
SIGNATURES = "SIGNATURES"
EXPORT_STATUSES = frozenset({DocumentStatus.APPROVED, DocumentStatus.ARCHIVED, DocumentStatus.DEPRECATED})
CLASS_SCHEME = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
TYPE_SCHEME = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
CONF_SCHEME = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
FORMAT_SCHEME = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
PATIENT_SCHEME = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
UNIQUE_SCHEME = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
DOCUMENT_ENTRY = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
REGISTRY_PACKAGE = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:RegistryPackage"
SUBMISSION_SET_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
SUBSET_UNIQUE_SCHEME = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
SUBSET_SOURCE_SCHEME = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SUBSET_PATIENT_SCHEME = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"


@dataclass(frozen=True)
class ExportedDocument:
    document: DocumentEntry
    file_name: str


SPOOL_BYTES: Final = 8 * 1024 * 1024  # an export larger than this is built on disk


def _slot(parent: etree._Element, name: str, value: str) -> None:
    slot = etree.SubElement(parent, f"{{{RIM}}}Slot", name=name)
    etree.SubElement(etree.SubElement(slot, f"{{{RIM}}}ValueList"), f"{{{RIM}}}Value").text = value


def _name(parent: etree._Element, tag: str, value: str) -> None:
    element = etree.SubElement(parent, f"{{{RIM}}}{tag}")
    etree.SubElement(element, f"{{{RIM}}}LocalizedString", value=value)


def _classification(parent: etree._Element, scheme: str, entry: str, code: str, system: str) -> None:
    element = etree.SubElement(
        parent,
        f"{{{RIM}}}Classification",
        classificationScheme=scheme,
        classifiedObject=entry,
        nodeRepresentation=code,
    )
    _slot(element, "codingScheme", system)


def metadata_xml(record: Record, documents: list[ExportedDocument]) -> bytes:
    request = etree.Element(f"{{{LCM}}}SubmitObjectsRequest", nsmap={"lcm": LCM, "rim": RIM})
    objects = etree.SubElement(request, f"{{{RIM}}}RegistryObjectList")
    patient_id = record.patient.identifier.hl7()
    for item in documents:
        document = item.document
        entry = etree.SubElement(
            objects,
            f"{{{RIM}}}ExtrinsicObject",
            id=document.entry_uuid,
            mimeType=document.mime_type,
            objectType=DOCUMENT_ENTRY,
            status=document.availability_status,
        )
        _slot(entry, "creationTime", document.creation_time.strftime("%Y%m%d%H%M%S"))
        _slot(entry, "hash", document.hash_sha1)
        _slot(entry, "size", str(document.size))
        _slot(entry, "URI", item.file_name)
        _slot(entry, "sourcePatientId", patient_id)
        _name(entry, "Name", document.title)
        _classification(
            entry, CLASS_SCHEME, document.entry_uuid, document.class_code, document.class_code_scheme
        )
        _classification(
            entry, TYPE_SCHEME, document.entry_uuid, document.type_code, document.type_code_scheme
        )
        _classification(
            entry, FORMAT_SCHEME, document.entry_uuid, document.format_code, document.format_code_scheme
        )
        for code in document.confidentiality_codes:
            _classification(entry, CONF_SCHEME, document.entry_uuid, code["code"], code.get("scheme", ""))
        for scheme, value, label in (
            (PATIENT_SCHEME, patient_id, "XDSDocumentEntry.patientId"),
            (UNIQUE_SCHEME, document.unique_id, "XDSDocumentEntry.uniqueId"),
        ):
            identifier = etree.SubElement(
                entry,
                f"{{{RIM}}}ExternalIdentifier",
                identificationScheme=scheme,
                registryObject=document.entry_uuid,
                value=value,
            )
            _name(identifier, "Name", label)
    _submission_set(objects, record, patient_id, documents)
    return etree.tostring(request, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _submission_set(
    objects: etree._Element, record: Record, patient_id: str, documents: list[ExportedDocument]
) -> None:
    """The XDM submission set grouping the exported documents (HasMember associations)."""
    entry = f"urn:uuid:{uuid.uuid4()}"
    package = etree.SubElement(objects, f"{{{RIM}}}RegistryPackage", id=entry, objectType=REGISTRY_PACKAGE)
    _slot(package, "submissionTime", clock.now().strftime("%Y%m%d%H%M%S"))
    _name(package, "Name", "Export du DMP par son titulaire")
    for scheme, value, label in (
        (SUBSET_UNIQUE_SCHEME, f"2.25.{uuid.uuid4().int}", "XDSSubmissionSet.uniqueId"),
        (SUBSET_SOURCE_SCHEME, settings.OPENDMP_REPOSITORY_UNIQUE_ID, "XDSSubmissionSet.sourceId"),
        (SUBSET_PATIENT_SCHEME, patient_id, "XDSSubmissionSet.patientId"),
    ):
        identifier = etree.SubElement(
            package,
            f"{{{RIM}}}ExternalIdentifier",
            identificationScheme=scheme,
            registryObject=entry,
            value=value,
        )
        _name(identifier, "Name", label)
    etree.SubElement(
        objects,
        f"{{{RIM}}}Classification",
        classifiedObject=entry,
        classificationNode=SUBMISSION_SET_NODE,
    )
    for item in documents:
        association = etree.SubElement(
            objects,
            f"{{{RIM}}}Association",
            associationType="urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember",
            sourceObject=entry,
            targetObject=item.document.entry_uuid,
        )
        _slot(association, "SubmissionSetStatus", "Original")


def _index_html(record: Record, documents: list[ExportedDocument], signatures: list[str]) -> bytes:
    rows = "".join(
        f'<li><a href="{SUBSET}/{html.escape(d.file_name)}">{html.escape(d.document.title)}</a> '
        f"({d.document.creation_time:%d/%m/%Y})</li>"
        for d in documents
    )
    patient = html.escape(record.patient.display_name)
    signed = (
        f"<p>{len(signatures)} signature(s) électronique(s) des dépôts ({SIGNATURES}/) : "
        "la preuve de qui a déposé quels documents.</p>"
        if signatures
        else ""
    )
    return (
        '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8">'
        f"<title>DMP de {patient}</title></head><body><h1>Dossier médical partagé de {patient}</h1>"
        f"<p>{len(documents)} document(s). Historique des accès : "
        f'<a href="TRACES.CSV">TRACES.CSV</a>.</p>{signed}<ul>{rows}</ul></body></html>'
    ).encode()


README = """Export de votre Dossier Médical Partagé (format IHE XDM)

IHE_XDM/SUBSET01/METADATA.XML  description normalisée (ebRIM 3.0) de chaque document
IHE_XDM/SUBSET01/DOC*.XML      les documents (CDA R2), lisibles par les logiciels de santé
SIGNATURES/SIG*.XML            signatures électroniques (XAdES) des dépôts dont vous voyez tous
                               les documents : chacune nomme les documents du dépôt et leur empreinte
INDEX.HTM                      sommaire à ouvrir dans un navigateur
TRACES.CSV                     historique des accès à votre dossier
EXPRESSION.TXT                 votre espace d'expression personnelle

Ces fichiers contiennent des données de santé : conservez-les en lieu sûr.
"""


def _traces_csv(caller: Caller, record: Record) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";")
    writer.writerow(
        ["date", "acteur", "type", "structure", "action", "mode", "motif", "resultat", "document"]
    )
    for event in record_traces_shown(caller=caller, record=record).iterator(chunk_size=2000):
        writer.writerow(
            [
                _cell(value)
                for value in (
                    event.occurred_at.isoformat(),
                    event.actor_name or event.actor_id,
                    event.actor_kind,
                    event.actor_structure_name,
                    action_label(event.action),
                    event.access_mode,
                    event.access_reason,
                    event.outcome,
                    event.document_unique_id,
                )
            ]
        )
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _cell(value: str) -> str:
    """A CSV cell a spreadsheet shows as text: names and reasons come from professionals' software,
    and one starting with = + - @ would be run as a formula when the patient opens the file."""
    return f"'{value}" if value[:1] in {"=", "+", "-", "@", "\t", "\r"} else value


def _expression_text(space: ExpressionSpace | None, persons: list[TrustedPerson]) -> bytes:
    lines = ["Espace d'expression personnelle", ""]
    if space is not None:
        lines += [
            f"Don d'organes : {space.get_organ_donation_display()} {space.organ_donation_note}".strip(),
            f"Directives anticipées : {'oui' if space.has_advance_directives else 'non'} "
            f"{space.advance_directives_location}".strip(),
            f"Ayants droit : {space.get_heirs_access_display()}",
            f"Note : {space.personal_note}",
        ]
    for person in persons:
        lines.append(f"{person.get_role_display()} : {person.given_name} {person.family_name} {person.phone}")
    return "\n".join(lines).encode("utf-8")


def record_export_zip(*, caller: Caller, record: Record) -> IO[bytes]:
    """The IHE XDM package of everything the caller may see of the record (audited RECORD_EXPORT),
    as a file positioned at its start. Every visible document, however many (the searches' cap
    does not apply); each is written as it is read, and the package goes to disk past a few MB,
    so a large record does not sit in memory."""
    access = record_read(
        caller=caller, record=record, action=Action.RECORD_EXPORT, audit_action=AuditAction.RECORD_EXPORT
    )
    record = access.record
    contents = record_contents(
        caller=caller, record=record, statuses=EXPORT_STATUSES, audit_label="Export", capped=False
    )
    space = ExpressionSpace.objects.filter(record=record).first()
    persons = list(TrustedPerson.objects.filter(record=record).order_by("pk"))
    package: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - returned open
    documents: list[ExportedDocument] = []
    with zipfile.ZipFile(package, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.TXT", README.encode("utf-8"))
        ordered = sorted(contents.documents, key=lambda v: v.document.creation_time)
        for index, visible in enumerate(ordered, start=1):
            retrieved = document_retrieve(caller=caller, unique_id=visible.document.unique_id)
            extension = "XML" if retrieved.document.mime_type.endswith("xml") else "BIN"
            item = ExportedDocument(retrieved.document, f"DOC{index:05d}.{extension}")
            archive.writestr(f"{SUBSET}/{item.file_name}", retrieved.content)
            documents.append(item)
        signatures = []
        for index, signature in enumerate(lot_signatures_shown(record, contents), start=1):
            name = f"SIG{index:05d}.XML"
            archive.writestr(f"{SIGNATURES}/{name}", signature.content)
            signatures.append(name)
        archive.writestr("INDEX.HTM", _index_html(record, documents, signatures))
        archive.writestr(f"{SUBSET}/METADATA.XML", metadata_xml(record, documents))
        archive.writestr("TRACES.CSV", _traces_csv(caller, record))
        archive.writestr("EXPRESSION.TXT", _expression_text(space, persons))
    package.seek(0)
    return package


def _pdf_text(value: str) -> str:
    # The core PDF fonts are Latin-1: anything else is replaced, never dropped silently.
    return value.encode("latin-1", "replace").decode("latin-1")


def record_summary_pdf(*, caller: Caller, record: Record) -> bytes:
    """A readable summary: identity, documents, who is authorised, expression space."""
    access = record_read(
        caller=caller, record=record, action=Action.RECORD_EXPORT, audit_action=AuditAction.RECORD_EXPORT
    )
    record = access.record
    contents = record_contents(caller=caller, record=record, statuses=EXPORT_STATUSES, audit_label="Summary")
    authorisations = list(authorisations_of_record(caller=caller, record=record))
    space = ExpressionSpace.objects.filter(record=record).first()
    pdf = FPDF()
    pdf.set_title(_pdf_text(f"DMP - {record.patient.display_name}"))
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(
        0,
        10,
        _pdf_text(f"Dossier Médical Partagé - {record.patient.display_name}"),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.set_font("Helvetica", "", 10)
    pdf.cell(
        0,
        6,
        _pdf_text(f"Né(e) le {record.patient.birth_date:%d/%m/%Y} - dossier {record.get_status_display()}"),
        new_x="LMARGIN",
        new_y="NEXT",
    )

    def heading(text: str) -> None:
        pdf.ln(4)
        pdf.set_font("Helvetica", "B", 12)
        pdf.cell(0, 8, _pdf_text(text), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 10)

    def line(text: str) -> None:
        pdf.multi_cell(0, 5, _pdf_text(text), new_x="LMARGIN", new_y="NEXT")

    heading(f"Documents ({len(contents.documents)})")
    for visible in sorted(contents.documents, key=lambda v: v.document.creation_time, reverse=True):
        document = visible.document
        flags = " [masqué aux professionnels]" if document.masked_to_professionals else ""
        line(f"{document.creation_time:%d/%m/%Y} - {document.title} - {document.type_code_display}{flags}")
    heading("Professionnels et structures")
    for row in authorisations:
        mt = " (médecin traitant DMP)" if row.is_medecin_traitant else ""
        line(f"{row.grantee_name or row.grantee_id} : {row.get_status_display()}{mt}")
    heading("Volontés")
    line(f"Opposition au bris de glace : {'oui' if record.opposes_break_glass else 'non'}")
    line(f"Opposition à l'accès Centre 15 : {'oui' if record.opposes_centre_15 else 'non'}")
    if space is not None:
        line(f"Don d'organes : {space.get_organ_donation_display()}")
        line(
            f"Directives anticipées : {'oui' if space.has_advance_directives else 'non'} "
            f"{space.advance_directives_location}"
        )
    return bytes(pdf.output())
