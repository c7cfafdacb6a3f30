"""The stored queries read documents as rows and answer from them (`documents.rows`,
`queries.stored_entry`): they must answer exactly what reading model instances and validating
each into a `DocumentInput` answered, for every caller and query, byte for byte."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db.models.sql.compiler import SQLCompiler
from lxml import etree

from dmp.access.actors import AccessMode
from dmp.access.policy import Action, DocumentStatus
from dmp.audit.models import AuditEvent
from dmp.common.errors import ValidationFailed
from dmp.documents import access, selectors
from dmp.documents import rows as rows_module
from dmp.documents.builders import DocumentDraft, author_for, submission_for
from dmp.documents.metadata import AssociationInput, CodedValue, ConfidentialityChange, FolderInput
from dmp.documents.models import AssociationType, DocumentAuthor, DocumentEntry
from dmp.documents.services import document_change_confidentiality, submission_register
from dmp.ihe.xds import ebrim, queries
from dmp.ihe.xds.queries import QueryContext, QueryRequest, StoredQuery, parse_values
from dmp.records.access import record_facts

pytestmark = pytest.mark.django_db

APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"


def author_of(caller):
    return author_for(
        person_id=caller.actor.person_id,
        family_name=caller.actor.display_name.split()[-1],
        given_name="X",
        profession_code=caller.actor.profession_code,
        structure_id=caller.actor.structure_id,
        structure_name=caller.actor.structure_name,
    )


def publish(caller, patient, drafts, *, replaces=None, folder=False, events=()):
    submission = submission_for(
        ins=patient.identifier, author=author_of(caller), drafts=drafts, replaces=replaces
    )
    if events:
        first = submission.documents[0].model_copy(update={"event_codes": events})
        submission = submission.model_copy(update={"documents": (first, *submission.documents[1:])})
    if folder:
        submission = submission.model_copy(
            update={
                "folders": (
                    FolderInput(
                        entry_uuid="Folder01",
                        unique_id="1.2.250.1.999.7.42",
                        patient_id=submission.submission_set.patient_id,
                        title="Suivi cardiologique",
                        codes=(CodedValue(code="CARDIO", scheme="1.2.250.1.999.9", display="Cardiologie"),),
                    ),
                ),
                "associations": (
                    *submission.associations,
                    AssociationInput(
                        entry_uuid="F1",
                        association_type=AssociationType.HAS_MEMBER,
                        source="SubmissionSet01",
                        target="Folder01",
                        submission_set_status="Original",
                    ),
                    AssociationInput(
                        entry_uuid="F2",
                        association_type=AssociationType.HAS_MEMBER,
                        source="Folder01",
                        target=submission.documents[0].entry_uuid,
                    ),
                ),
            }
        )
    return submission_register(caller=caller, submission=submission)


@pytest.fixture
def registry(personas):
    return build_registry(personas)


def build_registry(personas):
    """Alice's record with approved, masked, replaced (deprecated), invisible-to-the-patient
    documents of two authors, a folder, event codes, odd stored values; and Léo's, another patient's."""
    bernard = personas.ps(personas.dr_bernard)
    moreau = personas.ps(personas.dr_moreau)
    alice = personas.alice
    first = publish(
        bernard,
        alice,
        [DocumentDraft(title='Compte rendu <initial> & "suivi"'), DocumentDraft(type_code="11502-2")],
        folder=True,
        events=(CodedValue(code="E1", scheme="1.2.250.1.999.3", display="Évènement"),),
    )
    masked = publish(bernard, alice, [DocumentDraft(title="À masquer")]).documents[0]
    document_change_confidentiality(
        caller=personas.patient(alice),
        entry_uuid=masked.entry_uuid,
        change=ConfidentialityChange(code="MASQUE_PS", enabled=True),
    )
    replaced = first.documents[1]
    publish(bernard, alice, [DocumentDraft(title="Compte rendu v2")], replaces={0: replaced.entry_uuid})
    publish(
        moreau, alice, [DocumentDraft(title="Caché au patient", confidentiality=("N", "INVISIBLE_PATIENT"))]
    )
    publish(moreau, alice, [DocumentDraft(title="Lettre de Moreau")])
    publish(bernard, personas.leo, [DocumentDraft(title="Carnet de Léo")])
    # Values the services would not store as such, read back the same by both paths: fractions
    # of a second, no stop time, spaces around a title, lists in the JSON columns.
    DocumentEntry.objects.filter(pk=first.documents[0].pk).update(
        service_start_time=dt.datetime(2024, 2, 29, 23, 59, 58, 123450, tzinfo=dt.UTC),
        service_stop_time=None,
        title="  Titre entouré d'espaces  ",
        reference_ids=["1.2.3^^^&1.2.250.1.999&ISO^urn:ihe:iti:xds:2013:order"],
        source_patient_info=["PID-5|MARTIN^Alice", "PID-7|19800101"],
    )
    return {"first": first, "replaced": replaced, "masked": masked}


def request(query_id, return_type="LeafClass", **slots):
    return QueryRequest(
        query_id=query_id,
        return_type=return_type,
        slots={f"${name}": [parse_values([value])] for name, value in slots.items()},
    )


def stored_queries(personas, registry):
    patient = f"'{personas.alice.identifier.hl7()}'"
    first = registry["first"]
    document, folder = first.documents[0], first.folders[0]
    find = {"XDSDocumentEntryPatientId": patient, "XDSDocumentEntryStatus": f"('{APPROVED}')"}
    both = {"XDSDocumentEntryPatientId": patient, "XDSDocumentEntryStatus": f"('{APPROVED}','{DEPRECATED}')"}
    return [
        request(StoredQuery.FIND_DOCUMENTS, **slot_names(find)),
        request(StoredQuery.FIND_DOCUMENTS, "ObjectRef", **slot_names(both)),
        request(StoredQuery.FIND_DOCUMENTS, **slot_names(both)),
        request(StoredQuery.FIND_DOCUMENTS, **slot_names(find, XDSDocumentEntryTypeCode="('11502-2')")),
        request(
            StoredQuery.FIND_DOCUMENTS,
            **slot_names(find, XDSDocumentEntryConfidentialityCode="('N^^2.16.840.1.113883.5.25')"),
        ),
        request(StoredQuery.FIND_DOCUMENTS, **slot_names(find, XDSDocumentEntryEventCodeList="('E1')")),
        request(StoredQuery.FIND_DOCUMENTS, **slot_names(find, XDSDocumentEntryAuthorPerson="('%MOREAU%')")),
        request(
            StoredQuery.GET_ALL,
            patientId=patient,
            XDSDocumentEntryStatus=f"('{APPROVED}','{DEPRECATED}')",
            XDSSubmissionSetStatus=f"('{APPROVED}')",
            XDSFolderStatus=f"('{APPROVED}')",
        ),
        request(StoredQuery.GET_DOCUMENTS, XDSDocumentEntryEntryUUID=f"('{document.entry_uuid}')"),
        request(
            StoredQuery.GET_DOCUMENTS,
            XDSDocumentEntryUniqueId=f"('{document.unique_id}','{registry['masked'].unique_id}')",
        ),
        request(
            StoredQuery.GET_DOCUMENTS_AND_ASSOCIATIONS,
            XDSDocumentEntryEntryUUID=f"('{document.entry_uuid}','{registry['replaced'].entry_uuid}')",
        ),
        request(
            StoredQuery.GET_SUBMISSION_SET_AND_CONTENTS,
            XDSSubmissionSetUniqueId=f"'{first.submission_set.unique_id}'",
            XDSDocumentEntryConfidentialityCode="('N^^2.16.840.1.113883.5.25')",
        ),
        request(StoredQuery.GET_FOLDER_AND_CONTENTS, XDSFolderEntryUUID=f"'{folder.entry_uuid}'"),
        request(StoredQuery.GET_FOLDERS_FOR_DOCUMENT, XDSDocumentEntryEntryUUID=f"'{document.entry_uuid}'"),
        request(
            StoredQuery.GET_RELATED_DOCUMENTS,
            XDSDocumentEntryEntryUUID=f"'{registry['replaced'].entry_uuid}'",
            AssociationTypes=f"('{AssociationType.REPLACE}')",
        ),
        request(StoredQuery.GET_ASSOCIATIONS, uuid=f"('{document.entry_uuid}')"),
        request(StoredQuery.GET_SUBMISSION_SETS, uuid=f"('{document.entry_uuid}')"),
        request(
            StoredQuery.FIND_SUBMISSION_SETS,
            XDSSubmissionSetPatientId=patient,
            XDSSubmissionSetStatus=f"('{APPROVED}')",
        ),
        request(StoredQuery.FIND_FOLDERS, XDSFolderPatientId=patient, XDSFolderStatus=f"('{APPROVED}')"),
    ]


def slot_names(base, **more):
    return {**base, **more}


def fixed_ids():
    ids = ebrim._Ids()
    ids._head = "urn:uuid:00000000-0000-4000-8000-"  # the same sub-object ids in both answers
    return ids


def as_models(monkeypatch):
    """The stored queries as they were: model instances, validated into DocumentInputs."""

    def search(*, caller, record, query, grants):
        # As it was: the caller's authorisations read on their own, not with the record.
        return selectors.document_search(caller=caller, record=record, query=query)

    def contents(*, caller, record, statuses, audit_label):
        return selectors.record_contents(
            caller=caller, record=record, statuses=statuses, audit_label=audit_label
        )

    def entry(document):
        return queries.document_input(document), ebrim.RegistryExtras(
            status=document.availability_status,
            repository_unique_id=document.repository_unique_id,
            hash_sha1=document.hash_sha1,
            size=document.size,
            logical_id=f"urn:uuid:{document.logical_id}",
            version=str(document.version),
        )

    monkeypatch.setattr(queries, "document_search_rows", search)
    monkeypatch.setattr(queries, "document_search_facts", search)
    monkeypatch.setattr(queries, "record_contents_rows", contents)
    monkeypatch.setattr(queries, "stored_entry", entry)


def answer(caller, patient, stored_query):
    """The response (XML and spliced objects) and the audit event of one query, or its error."""
    latest = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    try:
        result = queries.run_query(QueryContext(caller=caller, patient=patient), stored_query)
    except ValidationFailed as exc:
        outcome: object = [(p.code, p.message) for p in exc.problems]
    else:
        body, splices = queries.query_response(result, stored_query.return_type)
        xml = etree.tostring(body)
        for number, key in enumerate(splices):  # random: named by their order
            xml = xml.replace(key.encode(), f"splice{number}".encode())
        outcome = (xml, list(splices.values()))
    events = list(
        AuditEvent.objects.filter(pk__gt=latest).values_list(
            "action", "outcome", "reason", "details", "record_id"
        )
    )
    return outcome, events


def test_the_stored_queries_answer_from_rows_what_they_answered_from_models(personas, registry, monkeypatch):
    monkeypatch.setattr(ebrim, "new_ids", fixed_ids)
    alice = personas.alice.identifier
    callers = {
        "author": personas.ps(personas.dr_bernard),
        "médecin traitant": personas.ps(personas.dr_moreau),
        "patient": personas.patient(personas.alice),
        "break-glass": personas.ps(personas.dr_petit, mode=AccessMode.BREAK_GLASS, reason="Urgence vitale"),
        "blocked": personas.ps(personas.dr_durand),
    }
    requests = stored_queries(personas, registry)
    answers = {
        (who, index): answer(caller, alice, stored_query)
        for who, caller in callers.items()
        for index, stored_query in enumerate(requests)
    }
    shown = [a for (who, _), (a, _) in answers.items() if who == "author" and isinstance(a, tuple)]
    assert len(shown) == len(requests)
    assert b"<rim:ExtrinsicObject" in shown[0][1][0]
    assert b"20240229235958" in shown[0][1][0]
    with monkeypatch.context() as old:
        as_models(old)
        for (who, index), (outcome, events) in answers.items():
            assert answer(callers[who], alice, requests[index]) == (outcome, events), (who, index)


def test_rows_carry_the_models_values(personas, registry):
    """Every value a row carries is the model's, the times and JSON texts included."""
    record = personas.alice.record
    query = selectors.DocumentQuery(statuses=frozenset(DocumentStatus))
    caller = personas.ps(personas.dr_bernard)
    models = selectors.document_search(caller=caller, record=record, query=query)
    rows = selectors.document_search_rows(caller=caller, record=record, query=query)
    facts = selectors.document_search_facts(caller=caller, record=record, query=query)
    assert [v.decision for v in rows] == [v.decision for v in models] == [v.decision for v in facts]
    assert len(rows) == len(models) > 5
    for fact, model in zip((v.document for v in facts), (v.document for v in models), strict=True):
        assert fact.author_pairs == model.author_pairs
        for name in fact.__slots__:
            if name not in {"author_pairs", "author_pairs_json"}:
                assert getattr(fact, name) == getattr(model, name), name
    in_full = selectors.document_rows_in_full([v.document for v in facts])
    assert [in_full[v.document.pk].entry_uuid for v in facts] == [v.document.entry_uuid for v in rows]
    for row, model in zip((v.document for v in rows), (v.document for v in models), strict=True):
        # The author rows' ids, in their order, whichever way the document was read.
        expected = tuple(
            DocumentAuthor.objects.filter(document_id=row.pk)
            .order_by("position")
            .values_list("person_id", "structure_id")
        )
        assert expected
        assert row.author_pairs == model.author_pairs == expected
        for name in row.__slots__:
            if name == "author_pairs_json":
                continue  # decoded into author_pairs, compared above
            if name.endswith("_json"):
                assert json.loads(getattr(row, name)) == getattr(model, name.removesuffix("_json"))
            elif name != "author_pairs":
                assert getattr(row, name) == getattr(model, name), name


def test_documents_with_the_same_facts_share_a_decision_only_when_they_would_get_the_same(personas, registry):
    """`visible_documents` decides once for documents with the same facts: each decision is the
    one the policy takes for that document alone."""
    record = personas.alice.record
    documents = access.of_one_record(
        DocumentEntry.objects.filter(record=record).order_by("-creation_time", "-pk"), record, 0, 100
    )
    rows = access.rows_of_one_record(
        rows_module.row_values().filter(record=record).order_by("-creation_time", "-pk"), record, 0, 100
    )
    callers = [
        personas.ps(personas.dr_bernard),
        personas.ps(personas.dr_moreau),
        personas.ps(personas.nurse_robert),
        personas.patient(personas.alice),
        personas.ps(personas.dr_petit, mode=AccessMode.BREAK_GLASS, reason="Urgence vitale"),
    ]
    for caller in callers:
        facts = record_facts(caller.actor, record)
        alone = [
            (document.pk, decision)
            for document in documents
            if (decision := access.decide_document(caller, facts, document, Action.DOCUMENT_READ))
        ]
        assert [
            (d.pk, decision) for d, decision in access.visible_documents(caller, facts, documents)
        ] == alone
        assert [(d.pk, decision) for d, decision in access.visible_documents(caller, facts, rows)] == alone
    assert len({(d.masked_to_professionals, d.invisible_to_patient) for d in documents}) == 3


AUTHOR_PATTERNS = (
    "%MOREAU%",
    "moreau %",
    "%^MOREAU^%",
    "%^moreau",
    "%^%^%",
    "%^NOBODY^%",
    "B_RNARD%",
    "%^%^{given}%",
    "{id}",
    "{id}^%",
    "{id}^MOREAU^%",
    "%0%",
)


def test_document_and_submission_set_authors_match_an_author_pattern_alike(personas, registry):
    """$XDSDocumentEntryAuthorPerson is a SQL filter on the author rows, $XDSSubmissionSetAuthorPerson
    a test of each set's authors: both read a pattern through `author_clauses`, so an author
    matches or not whichever it is asked of."""
    bernard, moreau = personas.ps(personas.dr_bernard), personas.ps(personas.dr_moreau)
    moreau_family = moreau.actor.display_name.split()[-1]
    bernard_family = bernard.actor.display_name.split()[-1]
    patterns = [
        p.replace("MOREAU", moreau_family.upper())
        .replace("moreau", moreau_family.lower())
        .replace("B_RNARD", f"{bernard_family[0]}_{bernard_family[2:].upper()}")
        .format(given="X", id=moreau.actor.person_id)
        for p in AUTHOR_PATTERNS
    ]
    authors = list(DocumentAuthor.objects.filter(document__record=personas.alice.record))
    assert {a.person_id for a in authors} == {bernard.actor.person_id, moreau.actor.person_id}
    outcomes = set()
    for pattern in patterns:
        by_sql = set(
            DocumentEntry.objects.filter(record=personas.alice.record)
            .filter(selectors._author_filter(pattern))
            .values_list("pk", flat=True)
        )
        by_python = {
            a.document_id
            for a in authors
            if selectors.author_matches(pattern, person_id=a.person_id, person_name=a.person_name)
        }
        assert by_sql == by_python, pattern
        outcomes.add(len(by_sql))
        context = QueryContext(caller=bernard, patient=personas.alice.identifier)
        patient = f"'{personas.alice.identifier.hl7()}'"
        statuses = f"('{APPROVED}','{DEPRECATED}')"
        escaped = pattern.replace("'", "''")
        documents = queries.run_query(
            context,
            request(
                StoredQuery.FIND_DOCUMENTS,
                **slot_names(
                    {
                        "XDSDocumentEntryPatientId": patient,
                        "XDSDocumentEntryStatus": statuses,
                        "XDSDocumentEntryAuthorPerson": f"('{escaped}')",
                    }
                ),
            ),
        ).documents
        subsets = queries.run_query(
            context,
            request(
                StoredQuery.FIND_SUBMISSION_SETS,
                XDSSubmissionSetPatientId=patient,
                XDSSubmissionSetStatus=f"('{APPROVED}')",
                XDSSubmissionSetAuthorPerson=f"('{escaped}')",
            ),
        ).submission_sets
        # Each set is authored by the author of its documents.
        sets_of_documents = set(
            DocumentEntry.objects.filter(entry_uuid__in=[d.entry_uuid for d in documents]).values_list(
                "submission_set_id", flat=True
            )
        )
        assert {s.pk for s in subsets} == sets_of_documents, pattern
    assert len(outcomes) > 2  # patterns that match none, some and all of the documents


def test_a_search_by_status_alone_reads_from_a_statement_compiled_once(personas, registry, monkeypatch):
    """FindDocuments by status alone reads its rows from a statement compiled once per shape: the
    same rows as the query built each time, at any offset and for any statuses; a second search
    compiles no statement on the documents."""
    record = personas.alice.record
    for statuses in ([DocumentStatus.APPROVED], [DocumentStatus.APPROVED, DocumentStatus.DEPRECATED]):
        values = sorted(s.value for s in statuses)
        built = rows_module.document_rows(
            rows_module.in_record(rows_module.row_values(), record, values), 0, 100
        )
        assert len(built) == 4 + len(statuses)  # 5 approved, 1 deprecated
        for offset, limit in ((0, 100), (1, 2), (3, 100)):
            prepared = access.plain_rows_of_one_record(record, values, offset, limit)
            assert [vars_of(row) for row in prepared] == [
                vars_of(row) for row in built[offset : offset + limit]
            ]
    compiled = []
    as_sql = SQLCompiler.as_sql

    def spy(compiler, *args, **kwargs):
        compiled.append(compiler.query.model)
        return as_sql(compiler, *args, **kwargs)

    caller = personas.ps(personas.dr_bernard)
    find = request(
        StoredQuery.FIND_DOCUMENTS,
        XDSDocumentEntryPatientId=f"'{personas.alice.identifier.hl7()}'",
        XDSDocumentEntryStatus=f"('{APPROVED}')",
    )
    first = queries.run_query(QueryContext(caller=caller, patient=personas.alice.identifier), find)
    monkeypatch.setattr(SQLCompiler, "as_sql", spy)
    again = queries.run_query(QueryContext(caller=caller, patient=personas.alice.identifier), find)
    assert [d.pk for d in again.documents] == [d.pk for d in first.documents]
    assert len(first.documents) == 5  # every approved one, the masked one to its author too
    assert DocumentEntry not in compiled
    typed = request(
        StoredQuery.FIND_DOCUMENTS,
        XDSDocumentEntryPatientId=f"'{personas.alice.identifier.hl7()}'",
        XDSDocumentEntryStatus=f"('{APPROVED}')",
        XDSDocumentEntryTypeCode="('11502-2')",
    )
    queries.run_query(QueryContext(caller=caller, patient=personas.alice.identifier), typed)
    assert DocumentEntry in compiled  # a filter more: the query is built


def vars_of(row):
    return {name: getattr(row, name) for name in row.__slots__}
