"""Validation of submitted XDS metadata against the DMP profile, one precise problem per fault.

Pure checks over the typed input (no database): required attributes, identifiers, value
sets, typeCode/classCode coherence, confidentiality rules, times. Checks that need stored
state (duplicates, replaced documents) live in the service.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

from django.conf import settings
from django.utils.translation import gettext
from pydantic import BaseModel

from dmp.cda.validation import CoherenceFacts, validate_cda
from dmp.common import clock
from dmp.common.errors import ErrorCode, Problem
from dmp.common.xml import NOT_XML_CHARACTER
from dmp.documents.metadata import Author, CodedValue, DocumentInput, SubmissionInput, is_unique_id
from dmp.documents.models import AssociationType, Confidentiality
from dmp.identity.ins import InvalidIns, parse_hl7_ins
from dmp.terminology import class_for_type, value_set

CLASS_CODE_SCHEME = "1.2.250.1.213.1.1.4.1"
# Extra document checks (the CDA header <-> metadata coherence registers itself here).
DocumentCheck = Callable[[DocumentInput], list[Problem]]
EXTRA_DOCUMENT_CHECKS: list[DocumentCheck] = []


def _coded(
    problems: list[Problem], value: CodedValue, value_set_name: str, where: str, *, check_scheme: bool = True
) -> None:
    codes = value_set(value_set_name)
    found = codes.get(value.code, value.scheme) if check_scheme and value.scheme else codes.get(value.code)
    if found is None:
        problems.append(
            Problem(
                ErrorCode.INVALID,
                gettext(
                    "%(where)s %(code)r (système %(scheme)s) n'est pas dans le jeu de valeurs du DMP %(set)s"
                )
                % {"where": where, "code": value.code, "scheme": value.scheme or "-", "set": value_set_name},
                where,
            )
        )
    elif check_scheme and not value.scheme:
        problems.append(
            Problem(
                ErrorCode.INVALID, gettext("%(where)s n'a pas de système de codage") % {"where": where}, where
            )
        )


def _time_problems(document: DocumentInput, where: str) -> list[Problem]:
    skew = dt.timedelta(seconds=settings.OPENDMP_CLOCK_SKEW_SECONDS)
    now = clock.now()
    problems = []
    if document.creation_time > now + skew:
        problems.append(
            Problem(ErrorCode.INVALID, gettext("creationTime est dans le futur"), f"{where}.creationTime")
        )
    start, stop = document.service_start_time, document.service_stop_time
    if start is not None and stop is not None and stop < start:
        problems.append(
            Problem(
                ErrorCode.INVALID,
                gettext("serviceStopTime précède serviceStartTime"),
                f"{where}.serviceStopTime",
            )
        )
    return problems


def confidentiality_problems(codes: list[CodedValue] | tuple[CodedValue, ...], where: str) -> list[Problem]:
    problems: list[Problem] = []
    if not codes:
        problems.append(
            Problem(ErrorCode.INVALID, gettext("Au moins un confidentialityCode est obligatoire."), where)
        )
    for code in codes:
        _coded(problems, code, "confidentiality", where)
    present = {c.code for c in codes}
    if (
        not settings.OPENDMP_ALLOW_MASKED_AND_INVISIBLE
        and Confidentiality.MASKED_TO_PROFESSIONALS in present
        and Confidentiality.INVISIBLE_TO_PATIENT in present
    ):
        problems.append(
            Problem(
                ErrorCode.INVALID,
                gettext("MASQUE_PS et INVISIBLE_PATIENT ne peuvent pas être combinés dans ce DMP."),
                where,
            )
        )
    if len(present & {"N", "R", "V"}) > 1:
        problems.append(
            Problem(ErrorCode.INVALID, gettext("Un seul des codes N, R, V peut être donné."), where)
        )
    return problems


def coherence_facts(document: DocumentInput) -> CoherenceFacts:
    """What the CDA header of `document` must agree with."""
    try:
        ins = parse_hl7_ins(document.patient_id)
        patient: tuple[str, str] | None = (ins.authority.value, ins.value)
    except InvalidIns:
        patient = None
    return CoherenceFacts(
        unique_id=document.unique_id,
        type_code=document.type_code.code,
        class_code=document.class_code.code,
        format_code=document.format_code.code,
        patient_ins=patient,
        confidentiality_codes=frozenset(c.code for c in document.confidentiality_codes),
        facility_type=document.healthcare_facility_type_code.code,
        practice_setting=document.practice_setting_code.code,
        creation_time=document.creation_time,
        service_start=document.service_start_time,
        service_stop=document.service_stop_time,
        author_ids=frozenset(a.person_id for a in document.authors if a.person_id),
        language=document.language_code,
    )


def document_problems(document: DocumentInput, index: int) -> list[Problem]:
    where = f"DocumentEntry[{index}]"
    problems: list[Problem] = []
    if not is_unique_id(document.unique_id):
        problems.append(
            Problem(
                ErrorCode.INVALID, gettext("uniqueId doit être un OID (suivi ou non de ^extension)"), where
            )
        )
    allowed_mime: list[str] = settings.OPENDMP_ALLOWED_MIME_TYPES
    if document.mime_type not in allowed_mime:
        problems.append(
            Problem(
                ErrorCode.INVALID,
                gettext("mimeType %(mime)r n'est pas accepté par le DMP") % {"mime": document.mime_type},
                where,
            )
        )
    if not document.content:
        problems.append(Problem(ErrorCode.INVALID, gettext("le document est vide"), where))
    if document.class_code.scheme and document.class_code.scheme != CLASS_CODE_SCHEME:
        problems.append(
            Problem(
                ErrorCode.INVALID, gettext("classCode doit être de la TRE_A03 (1.2.250.1.213.1.1.4.1)"), where
            )
        )
    _coded(problems, document.class_code, "class_code", f"{where}.classCode", check_scheme=False)
    _coded(problems, document.type_code, "type_code", f"{where}.typeCode")
    _coded(problems, document.format_code, "format_code", f"{where}.formatCode", check_scheme=False)
    _coded(
        problems,
        document.healthcare_facility_type_code,
        "healthcare_facility_type",
        f"{where}.healthcareFacilityTypeCode",
    )
    _coded(problems, document.practice_setting_code, "practice_setting", f"{where}.practiceSettingCode")
    expected_class = class_for_type(document.type_code.code)
    if expected_class is not None and expected_class != document.class_code.code:
        problems.append(
            Problem(
                ErrorCode.INVALID,
                gettext("typeCode %(type)s relève du classCode %(expected)s, pas %(given)s")
                % {
                    "type": document.type_code.code,
                    "expected": expected_class,
                    "given": document.class_code.code,
                },
                f"{where}.classCode",
            )
        )
    problems.extend(confidentiality_problems(document.confidentiality_codes, f"{where}.confidentialityCode"))
    if not document.authors:
        problems.append(
            Problem(ErrorCode.INVALID, gettext("au moins un auteur est obligatoire"), f"{where}.author")
        )
    for position, author in enumerate(document.authors):
        if not (author.person or author.institutions):
            problems.append(
                Problem(
                    ErrorCode.INVALID,
                    gettext("un auteur est une personne ou une structure"),
                    f"{where}.author[{position}]",
                )
            )
        problems.extend(_author_size_problems(author, f"{where}.author[{position}]"))
    if len(document.title) > 256:
        problems.append(Problem(ErrorCode.INVALID, gettext("title dépasse 256 caractères"), f"{where}.title"))
    problems.extend(_time_problems(document, where))
    if document.mime_type == "text/xml" and document.content:
        problems.extend(validate_cda(document.content, expected=coherence_facts(document), where=where))
    for check in EXTRA_DOCUMENT_CHECKS:
        problems.extend(check(document))
    return problems


def _author_size_problems(author: Author, where: str) -> list[Problem]:
    """The author values kept in indexed columns (documents.DocumentAuthor) must fit them: a
    longer one is refused here, not left to the database (PostgreSQL fails, SQLite stores it)."""
    columns = (
        (gettext("identifiant de PS"), author.person_id, 64),
        (gettext("nom"), author.display_name, 256),
        (gettext("identifiant de structure"), author.structure_id, 40),
        (gettext("rôle"), author.roles[0] if author.roles else "", 16),
        (gettext("spécialité"), author.specialties[0] if author.specialties else "", 16),
    )
    return [
        Problem(
            ErrorCode.INVALID,
            gettext("auteur : %(label)s de plus de %(size)d caractères") % {"label": label, "size": size},
            where,
        )
        for label, value, size in columns
        if len(value) > size
    ]


def _text_problems(metadata: BaseModel, where: str) -> Iterator[Problem]:
    """Text XML cannot carry (control characters): it came through FHIR or a form, and every XDS
    answer and CDA holding it would fail, for the whole record. The document bytes are not text."""
    for name, value in metadata:
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, BaseModel):
                yield from _text_problems(item, f"{where}.{name}")
            elif isinstance(item, str) and NOT_XML_CHARACTER.search(item):
                yield Problem(
                    ErrorCode.INVALID,
                    gettext("%(name)s contient un caractère de contrôle qu'XML ne peut pas porter")
                    % {"name": name},
                    f"{where}.{name}",
                )


def submission_problems(submission: SubmissionInput) -> list[Problem]:
    """Every problem of the submission that can be found without the database."""
    problems: list[Problem] = []
    subset = submission.submission_set
    if not is_unique_id(subset.unique_id):
        problems.append(
            Problem(ErrorCode.INVALID, gettext("uniqueId du SubmissionSet doit être un OID"), "SubmissionSet")
        )
    if not subset.source_id:
        problems.append(
            Problem(ErrorCode.INVALID, gettext("sourceId du SubmissionSet est obligatoire"), "SubmissionSet")
        )
    _coded(
        problems,
        subset.content_type_code,
        "content_type",
        "SubmissionSet.contentTypeCode",
        check_scheme=False,
    )
    if not submission.documents and not submission.folders and not submission.associations:
        problems.append(Problem(ErrorCode.INVALID, gettext("la soumission est vide"), "SubmissionSet"))
    unique_ids = [subset.unique_id, *(d.unique_id for d in submission.documents)]
    unique_ids += [f.unique_id for f in submission.folders]
    duplicates = {u for u in unique_ids if unique_ids.count(u) > 1}
    problems.extend(
        Problem(
            ErrorCode.DUPLICATE_UNIQUE_ID,
            gettext("uniqueId %(unique_id)s figure deux fois dans la soumission") % {"unique_id": duplicate},
            "",
        )
        for duplicate in sorted(duplicates)
    )
    entry_ids = [subset.entry_uuid, *(d.entry_uuid for d in submission.documents)]
    entry_ids += [f.entry_uuid for f in submission.folders]
    entry_ids += [a.entry_uuid for a in submission.associations]
    if len(set(entry_ids)) != len(entry_ids):
        problems.append(
            Problem(ErrorCode.INVALID, gettext("un entryUUID / id figure deux fois dans la soumission"), "")
        )
    problems.extend(_text_problems(subset, "SubmissionSet"))
    for index, document in enumerate(submission.documents):
        problems.extend(_text_problems(document, f"DocumentEntry[{index}]"))
        problems.extend(document_problems(document, index))
    for index, folder in enumerate(submission.folders):
        problems.extend(_text_problems(folder, f"Folder[{index}]"))
        if not is_unique_id(folder.unique_id):
            problems.append(
                Problem(ErrorCode.INVALID, gettext("uniqueId du Folder doit être un OID"), f"Folder[{index}]")
            )
    for index, association in enumerate(submission.associations):
        if association.association_type not in AssociationType.ALL:
            problems.append(
                Problem(
                    ErrorCode.INVALID,
                    gettext("type d'association inconnu %(type)s") % {"type": association.association_type},
                    f"Association[{index}]",
                )
            )
    return problems
