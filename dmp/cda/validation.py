"""Validating a submitted CDA: hardened parsing, CDA XSD, CI-SIS header rules, coherence with
the XDS metadata it travels with, and (optionally) the ANS schematrons.

Every check reports a precise `Problem` (what, where); nothing stops at the first problem,
so a vendor fixes a document in one round trip.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.utils.translation import gettext
from lxml import etree

from dmp.cda.header import (
    FORMAT_BY_MEDIA_TYPE,
    HL7,
    INS_OIDS,
    NS,
    CdaHeader,
    Code,
    clinical_document,
    header_of,
    level1_content,
)
from dmp.common.errors import ErrorCode, Problem, ValidationFailed
from dmp.terminology import value_set

CI_SIS_TEMPLATE = "1.2.250.1.213.1.1.1.1"
HL7_CONFIDENTIALITY = frozenset({"N", "R", "V"})


@functools.lru_cache(maxsize=4)
def _schema(path: str) -> etree.XMLSchema:
    # The XSD comes from the operator's configured directory (trusted), never from a document.
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.parse(path, parser))  # noqa: TID251 - trusted local schema


def xsd_problems(root: etree._Element) -> list[Problem]:
    path: Path | None = settings.OPENDMP_CDA_XSD
    if path is None or not path.is_file():
        return []
    schema = _schema(str(path))
    # Validate a copy of the ClinicalDocument alone (it may sit inside an auto-presentable wrapper).
    document = etree.ElementTree(root) if root.getparent() is None else etree.ElementTree(_detached(root))
    if schema.validate(document):
        return []
    return [
        Problem(ErrorCode.INVALID, f"CDA XSD: {error.message}", f"line {error.line}")
        for error in schema.error_log[:50]  # type: ignore[index]
    ]


def _detached(root: etree._Element) -> etree._Element:
    from copy import deepcopy

    return deepcopy(root)


def _required(root: etree._Element, path: str, what: str) -> list[Problem]:
    return (
        []
        if root.find(path, NS) is not None
        else [Problem(ErrorCode.INVALID, gettext("%(what)s est obligatoire") % {"what": what}, path)]
    )


def _in_value_set(code: Code, name: str) -> bool:
    """The code AND its code system, as the XDS metadata are checked: a code is only meaningful
    in its system (the same string may name something else in another one)."""
    return bool(code.system) and value_set(name).get(code.code, code.system) is not None


def _shown(code: Code) -> str:
    return f"{code.code!r} (codeSystem {code.system or '-'})"


def _unknown_code(code: Code, message: str, where: str) -> Problem:
    """`message` names the code as %(code)s: its value and code system."""
    return Problem(ErrorCode.INVALID, message % {"code": _shown(code)}, where)


def header_problems(root: etree._Element, header: CdaHeader) -> list[Problem]:
    """CI-SIS header rules (the subset that decides the XDS metadata and the DMP's access)."""
    problems: list[Problem] = []
    for path, what in (
        ("h:realmCode[@code='FR']", "realmCode FR"),
        ("h:typeId", "typeId"),
        ("h:id", "ClinicalDocument/id"),
        ("h:code", "ClinicalDocument/code (typeCode)"),
        ("h:title", "title"),
        ("h:effectiveTime", "effectiveTime"),
        ("h:confidentialityCode", "confidentialityCode"),
        ("h:languageCode", "languageCode"),
        ("h:setId", "setId"),
        ("h:versionNumber", "versionNumber"),
        ("h:recordTarget/h:patientRole", "recordTarget/patientRole"),
        ("h:author/h:assignedAuthor/h:id", "author/assignedAuthor/id"),
        ("h:custodian", "custodian"),
        ("h:documentationOf/h:serviceEvent", "documentationOf/serviceEvent"),
        ("h:componentOf/h:encompassingEncounter", "componentOf/encompassingEncounter"),
    ):
        problems += _required(root, path, what)
    if CI_SIS_TEMPLATE not in header.template_ids:
        problems.append(
            Problem(
                ErrorCode.INVALID,
                gettext("templateId %(template)s (CI-SIS) est obligatoire") % {"template": CI_SIS_TEMPLATE},
                "templateId",
            )
        )
    if header.type_code.code and not _in_value_set(header.type_code, "type_code"):
        problems.append(
            _unknown_code(
                header.type_code, gettext("code %(code)s n'est pas un type de document du DMP"), "code"
            )
        )
    if not header.title:
        problems.append(Problem(ErrorCode.INVALID, gettext("title ne doit pas être vide"), "title"))
    if header.effective_time is None:
        problems.append(
            Problem(
                ErrorCode.INVALID, gettext("effectiveTime doit être une date HL7 valide"), "effectiveTime"
            )
        )
    if header.confidentiality.code not in HL7_CONFIDENTIALITY:
        problems.append(
            Problem(
                ErrorCode.INVALID, gettext("confidentialityCode doit être N, R ou V"), "confidentialityCode"
            )
        )
    if len(root.findall("h:recordTarget", NS)) > 1:
        # A document is about one patient (CI-SIS: recordTarget [1..1]); a second one would be
        # filed in the first one's record while naming someone else.
        problems.append(Problem(ErrorCode.INVALID, gettext("un seul recordTarget est admis"), "recordTarget"))
    if header.patient_ins is None:
        problems.append(
            Problem(ErrorCode.INVALID, gettext("recordTarget doit porter l'INS du patient"), "recordTarget")
        )
    facility = header.facility_type
    if facility is None:
        problems.append(
            Problem(
                ErrorCode.INVALID, gettext("healthCareFacility/code est obligatoire"), "healthCareFacility"
            )
        )
    elif not _in_value_set(facility, "healthcare_facility_type"):
        problems.append(
            _unknown_code(facility, gettext("healthCareFacility %(code)s inconnu"), "healthCareFacility")
        )
    if header.practice_setting is not None and not _in_value_set(header.practice_setting, "practice_setting"):
        problems.append(
            _unknown_code(
                header.practice_setting,
                gettext("cadre d'exercice %(code)s inconnu"),
                "standardIndustryClassCode",
            )
        )
    body = root.find("h:component", NS)
    if body is None or (body.find("h:structuredBody", NS) is None and body.find("h:nonXMLBody", NS) is None):
        problems.append(
            Problem(
                ErrorCode.INVALID, gettext("un structuredBody ou un nonXMLBody est obligatoire"), "component"
            )
        )
    return problems


def level1_problems(root: etree._Element) -> list[Problem]:
    """A level 1 body must be readable (base64) and of an XDS-SD format: a body stored otherwise
    could never be shown, nor its formatCode be checked against the metadata."""
    body = root.find("h:component/h:nonXMLBody", NS)
    if body is None:
        return []
    where = "component/nonXMLBody/text"
    text = body.find("h:text", NS)
    if text is None:
        return [Problem(ErrorCode.INVALID, gettext("nonXMLBody/text est obligatoire"), where)]
    problems: list[Problem] = []
    media_type = text.get("mediaType", "")
    if media_type not in FORMAT_BY_MEDIA_TYPE:
        problems.append(
            Problem(
                ErrorCode.INVALID,
                gettext(
                    "nonXMLBody/text : le mediaType %(media)r n'est pas un format de niveau 1 (%(formats)s)"
                )
                % {"media": media_type, "formats": ", ".join(FORMAT_BY_MEDIA_TYPE)},
                where,
            )
        )
    content = level1_content(text)
    if text.get("representation") != "B64":
        problems.append(
            Problem(
                ErrorCode.INVALID,
                gettext('nonXMLBody/text doit être en base64 (representation="B64")'),
                where,
            )
        )
    elif content is None:
        problems.append(
            Problem(ErrorCode.INVALID, gettext("nonXMLBody/text n'est pas du base64 valide"), where)
        )
    elif not content:
        problems.append(Problem(ErrorCode.INVALID, gettext("nonXMLBody/text est vide"), where))
    return problems


@dataclass(frozen=True)
class CoherenceFacts:
    """The XDS metadata of a DocumentEntry, as plain values (filled by dmp.documents)."""

    unique_id: str
    type_code: str
    class_code: str
    format_code: str
    patient_ins: tuple[str, str] | None  # (authority OID, value)
    confidentiality_codes: frozenset[str]
    facility_type: str
    practice_setting: str
    creation_time: dt.datetime
    service_start: dt.datetime | None = None
    service_stop: dt.datetime | None = None
    author_ids: frozenset[str] = field(default_factory=frozenset)
    language: str = ""


def _same_instant(a: dt.datetime | None, b: dt.datetime | None) -> bool:
    if a is None or b is None:
        return True
    return abs((a - b).total_seconds()) < 1


def check_coherence(header: CdaHeader, expected: CoherenceFacts) -> list[Problem]:
    """Each XDS attribute that the CDA header also states must say the same thing."""
    problems: list[Problem] = []

    def differs(what: str, metadata: str, cda: str) -> None:
        problems.append(
            Problem(
                ErrorCode.INVALID,
                gettext("%(what)s : les métadonnées disent %(metadata)r, l'en-tête CDA %(cda)r")
                % {"what": what, "metadata": metadata, "cda": cda},
                what,
            )
        )

    if header.unique_id != expected.unique_id:
        differs("uniqueId", expected.unique_id, header.unique_id)
    if header.type_code.code != expected.type_code:
        differs("typeCode", expected.type_code, header.type_code.code)
    if header.class_code and header.class_code != expected.class_code:
        differs("classCode", expected.class_code, header.class_code)
    if header.format_code and header.format_code.code != expected.format_code:
        differs("formatCode", expected.format_code, header.format_code.code)
    elif header.format_code is None and header.non_xml_media_type:
        # A level 1 body of no known format agrees with no formatCode.
        differs("formatCode", expected.format_code, f"mediaType {header.non_xml_media_type}")
    if expected.patient_ins is not None and expected.patient_ins not in set(header.patient_ids):
        differs(
            "patientId", "^".join(expected.patient_ins), ", ".join("^".join(i) for i in header.patient_ids)
        )
    if header.confidentiality.code and header.confidentiality.code not in expected.confidentiality_codes:
        differs(
            "confidentialityCode",
            ",".join(sorted(expected.confidentiality_codes)),
            header.confidentiality.code,
        )
    if header.facility_type and header.facility_type.code != expected.facility_type:
        differs("healthcareFacilityTypeCode", expected.facility_type, header.facility_type.code)
    if header.practice_setting and header.practice_setting.code != expected.practice_setting:
        differs("practiceSettingCode", expected.practice_setting, header.practice_setting.code)
    if not _same_instant(header.effective_time, expected.creation_time):
        differs("creationTime", expected.creation_time.isoformat(), header.effective_time_raw)
    if not _same_instant(header.service_start, expected.service_start):
        differs("serviceStartTime", str(expected.service_start), str(header.service_start))
    if not _same_instant(header.service_stop, expected.service_stop):
        differs("serviceStopTime", str(expected.service_stop), str(header.service_stop))
    cda_authors = {a.person_id for a in header.authors if a.person_id}
    if expected.author_ids and cda_authors and not cda_authors & expected.author_ids:
        differs("author", ",".join(sorted(expected.author_ids)), ",".join(sorted(cda_authors)))
    if expected.language and header.language and header.language.lower() != expected.language.lower():
        differs("languageCode", expected.language, header.language)
    return problems


def _prefixed(problems: Iterable[Problem], where: str) -> list[Problem]:
    return [Problem(p.code, p.message, f"{where}/{p.location}" if where else p.location) for p in problems]


def validate_cda(data: bytes, *, expected: CoherenceFacts | None = None, where: str = "") -> list[Problem]:
    """All the problems of a CDA document (and of its agreement with `expected` metadata)."""
    try:
        root = clinical_document(data)
    except ValidationFailed as exc:
        return _prefixed(exc.problems, where)
    header = header_of(root)
    problems = xsd_problems(root) + header_problems(root, header) + level1_problems(root)
    if expected is not None:
        problems += check_coherence(header, expected)
    problems += schematron_problems(root)
    return _prefixed(problems, where)


def schematron_problems(root: etree._Element) -> list[Problem]:
    """Optional full ANS schematron validation: compiled XSLT reports in the configured directory.

    The operator compiles the ANS schematrons to XSLT (SVRL output) once and points
    `OPENDMP_SCHEMATRON_DIR` at them; each `*.xsl` there is applied with Saxon.
    """
    directory: Path | None = settings.OPENDMP_SCHEMATRON_DIR
    if directory is None or not directory.is_dir():
        return []
    from dmp.cda.schematron import run_compiled_schematrons

    return run_compiled_schematrons(directory, etree.tostring(root))


__all__ = ["HL7", "INS_OIDS", "CoherenceFacts", "check_coherence", "validate_cda"]
