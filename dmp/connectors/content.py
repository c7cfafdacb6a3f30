"""The document published for a batch of external items: a CDA with a readable table."""

from __future__ import annotations

from lxml import etree

from dmp.connectors.clients import ExternalItem
from dmp.connectors.models import Source
from dmp.records.models import Record

HL7 = "urn:hl7-org:v3"


def _element(parent: etree._Element, tag: str, text: str = "", **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{HL7}}}{tag}", attributes)
    if text:
        element.text = text
    return element


def items_document(
    *, record: Record, source: Source, title: str, items: list[ExternalItem], unique_id: str
) -> bytes:
    """CDA R2 with the patient's identity and a narrative table of the items.

    Deterministic for given items (same bytes on a retried synchronisation), and built with
    lxml element APIs so that every value is escaped.
    """
    patient = record.patient
    root = etree.Element(f"{{{HL7}}}ClinicalDocument", nsmap={None: HL7})  # type: ignore[dict-item]
    _element(root, "typeId", root="2.16.840.1.113883.1.3", extension="POCD_HD000040")
    _element(root, "id", root=unique_id)
    _element(root, "title", title)
    _element(root, "effectiveTime", value=max(item.date for item in items).strftime("%Y%m%d"))
    _element(root, "confidentialityCode", code="N", codeSystem="2.16.840.1.113883.5.25")
    _element(root, "languageCode", code="fr-FR")
    target = _element(_element(root, "recordTarget"), "patientRole")
    _element(target, "id", extension=patient.ins, root=patient.ins_authority)
    section = _element(_element(_element(root, "component"), "structuredBody"), "component")
    section = _element(section, "section")
    _element(section, "title", title)
    text = _element(section, "text")
    table = _element(text, "table")
    head = _element(_element(table, "thead"), "tr")
    columns = [
        "Date",
        "Libellé",
        "Code",
        "Quantité" if source == Source.PHARMACY else "Montant remboursé (€)",
    ]
    for column in columns:
        _element(head, "th", column)
    body = _element(table, "tbody")
    for item in items:
        row = _element(body, "tr")
        last = (
            item.quantity
            if source == Source.PHARMACY
            else (f"{item.amount_eur:.2f}" if item.amount_eur else "")
        )
        for value in (item.date.strftime("%d/%m/%Y"), item.label, item.code, last):
            _element(row, "td", value)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
