"""Entries' texts written when stored (`ihe.xds.entry_texts`): a query answers with them exactly
what it writes from the rows, for every caller and stored query, and never with the text of
another version of an entry."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

import pytest
from django.db import connection

from dmp.access.actors import AccessMode
from dmp.audit.models import AuditEvent
from dmp.documents import selectors
from dmp.documents.builders import DocumentDraft, submission_for
from dmp.documents.metadata import Author, CodedValue, ConfidentialityChange
from dmp.documents.models import DocumentEntry
from dmp.documents.services import (
    MetadataChange,
    document_change_confidentiality,
    documents_update,
    submission_register,
)
from dmp.ihe.xds import ebrim, entry_texts, queries
from dmp.ihe.xds.models import EntryText
from dmp.ihe.xds.queries import QueryContext
from dmp.ihe.xds.tests.test_stored_query_rows import author_of, build_registry, stored_queries

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry(personas):
    return build_registry(personas)


_SUB_OBJECT_ID = re.compile(rb'(<rim:(?:Classification|ExternalIdentifier) id=")[^"]*(")')


def published(caller, patient, draft=None, replaces=None):
    """One document registered as the XDS channel registers it: with its text."""
    submission = submission_for(
        ins=patient.identifier,
        author=author_of(caller),
        drafts=[draft or DocumentDraft()],
        replaces=replaces,
    )
    return submission_register(caller=caller, submission=submission, written=entry_texts.store_new).documents[
        0
    ]


def answer(caller, patient, stored_query, *, stored: bool) -> bytes:
    """The registry objects of one answer, read with the stored texts or written from the rows."""
    result = queries.run_query(QueryContext(caller=caller, patient=patient), stored_query)
    texts = entry_texts.texts_of([d.pk for d in result.documents]) if stored else {}
    _, splices = queries.query_response(result, stored_query.return_type, texts)
    return b"".join(splices.values())


def numbered(objects: bytes) -> bytes:
    """Sub-object ids (new in each answer written from rows) numbered in their order."""
    count = iter(range(1_000_000))
    return _SUB_OBJECT_ID.sub(lambda m: m.group(1) + str(next(count)).encode() + m.group(2), objects)


def callers_of(personas):
    return {
        "author": personas.ps(personas.dr_bernard),
        "médecin traitant": personas.ps(personas.dr_moreau),
        "patient": personas.patient(personas.alice),
        "break-glass": personas.ps(personas.dr_petit, mode=AccessMode.BREAK_GLASS, reason="Urgence vitale"),
    }


def test_answers_from_stored_texts_are_the_answers_written_from_rows(personas, registry, monkeypatch):
    assert sum(entry_texts.write_missing()) == DocumentEntry.objects.count()
    requests = stored_queries(personas, registry)
    alice = personas.alice.identifier
    for who, caller in callers_of(personas).items():
        for index, stored_query in enumerate(requests):
            written = answer(caller, alice, stored_query, stored=False)
            with monkeypatch.context() as spy:
                spy.setattr(queries, "stored_entry", _refuse)
                read = answer(caller, alice, stored_query, stored=True)
            assert numbered(read) == numbered(written), (who, index)
    everything = answer(callers_of(personas)["author"], alice, requests[2], stored=True)
    assert everything.count(b"<rim:ExtrinsicObject") == 6  # approved and deprecated, masked included
    ids = re.findall(rb' id="([^"]*)"', everything)
    assert len(ids) == len(set(ids)) >= 6 * 10  # each entry and its nine sub-objects at least


def _refuse(row):
    raise AssertionError(f"entry {row.entry_uuid} written again although its text is stored")


def test_an_entry_whose_metadata_changed_is_written_from_its_row_until_its_text_is(personas, registry):
    list(entry_texts.write_missing())
    patient = personas.patient(personas.alice)
    document = registry["first"].documents[0]
    # The portals change confidentiality without the XDS channel: a new version, no new text.
    document_change_confidentiality(
        caller=patient,
        entry_uuid=document.entry_uuid,
        change=ConfidentialityChange(code="MASQUE_PS", enabled=True),
    )
    current = DocumentEntry.objects.get(pk=document.pk)
    assert (
        EntryText.objects.get(document_id=document.pk).entry_uuid == document.entry_uuid != current.entry_uuid
    )
    get = queries.QueryRequest(
        query_id=queries.StoredQuery.GET_DOCUMENTS,
        return_type="LeafClass",
        slots={"$XDSDocumentEntryUniqueId": [[current.unique_id]]},
    )
    read = answer(patient, personas.alice.identifier, get, stored=True)
    assert f'id="{current.entry_uuid}"'.encode() in read
    assert b'nodeRepresentation="MASQUE_PS"' in read
    assert f'versionName="{current.version}"'.encode() in read
    assert numbered(read) == numbered(answer(patient, personas.alice.identifier, get, stored=False))
    assert list(entry_texts.write_missing()) == [1]
    assert EntryText.objects.get(document_id=document.pk).entry_uuid == current.entry_uuid
    assert list(entry_texts.write_missing()) == []


def test_a_find_documents_reads_in_full_only_the_entries_without_their_text(personas, registry, monkeypatch):
    """FindDocuments reads the decision's facts alone (`FactsRow`); the entries whose text is
    missing or of another version are read in full and written, the others come from their
    texts, and the answer is the one written from full rows."""
    list(entry_texts.write_missing())
    patient = personas.patient(personas.alice)
    first, masked = registry["first"].documents[0], registry["masked"]
    EntryText.objects.filter(document_id=masked.pk).delete()
    document_change_confidentiality(
        caller=patient,
        entry_uuid=first.entry_uuid,
        change=ConfidentialityChange(code="MASQUE_PS", enabled=True),
    )
    read_in_full: list[list[int]] = []
    in_full = selectors.document_rows_in_full

    def spy(found):
        read_in_full.append(sorted(f.pk for f in found))
        return in_full(found)

    find = stored_queries(personas, registry)[2]  # FindDocuments, approved and deprecated
    assert find.query_id == queries.StoredQuery.FIND_DOCUMENTS
    assert find.return_type == "LeafClass"
    monkeypatch.setattr(queries, "document_rows_in_full", spy)
    read = answer(patient, personas.alice.identifier, find, stored=True)
    assert read_in_full == [sorted([first.pk, masked.pk])]
    assert read.count(b"<rim:ExtrinsicObject") > 2
    assert numbered(read) == numbered(answer(patient, personas.alice.identifier, find, stored=False))
    assert len(read_in_full[1]) == read.count(b"<rim:ExtrinsicObject")  # without texts: every entry


def test_the_status_is_written_with_each_answer(personas):
    bernard = personas.ps(personas.dr_bernard)
    alice = personas.alice
    first = published(bernard, alice)
    published(bernard, alice, DocumentDraft(title="v2"), replaces={0: first.entry_uuid})
    assert EntryText.objects.count() == 2
    get = queries.QueryRequest(
        query_id=queries.StoredQuery.GET_DOCUMENTS,
        return_type="LeafClass",
        slots={"$XDSDocumentEntryEntryUUID": [[first.entry_uuid]]},
    )
    read = answer(bernard, alice.identifier, get, stored=True)
    assert b'status="urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"' in read
    assert numbered(read) == numbered(answer(bernard, alice.identifier, get, stored=False))


def test_an_entry_is_registered_with_its_text_or_not_at_all(personas):
    bernard = personas.ps(personas.dr_bernard)
    submission = submission_for(
        ins=personas.alice.identifier,
        author=author_of(bernard),
        drafts=[DocumentDraft(), DocumentDraft(title="Deuxième")],
    )

    def fails(documents):
        entry_texts.store_new(documents)
        raise RuntimeError("the disk is full")

    events = AuditEvent.objects.count()
    with pytest.raises(RuntimeError):
        submission_register(caller=bernard, submission=submission, written=fails)
    assert (DocumentEntry.objects.count(), EntryText.objects.count()) == (0, 0)
    assert AuditEvent.objects.count() == events
    stored = submission_register(caller=bernard, submission=submission, written=entry_texts.store_new)
    texts = dict(EntryText.objects.values_list("document_id", "entry_uuid"))
    assert texts == {d.pk: d.entry_uuid for d in stored.documents}


def test_an_update_through_the_channel_writes_the_new_version_s_text(personas):
    bernard = personas.ps(personas.dr_bernard)
    alice = personas.alice
    document = published(bernard, alice)
    (updated,) = documents_update(
        caller=personas.patient(alice),
        changes=[
            MetadataChange(
                entry_uuid=document.entry_uuid,
                confidentiality=(ConfidentialityChange(code="MASQUE_PS", enabled=True),),
            )
        ],
        written=entry_texts.refresh,
    )
    text = EntryText.objects.get(document_id=document.pk)
    assert text.entry_uuid == updated.entry_uuid != document.entry_uuid
    assert 'nodeRepresentation="MASQUE_PS"' in text.text
    assert list(entry_texts.write_missing()) == []


def test_the_texts_are_kept_compressed_with_lz4_where_postgresql_has_it(personas):
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL storage setting")
    bernard = personas.ps(personas.dr_bernard)
    published(bernard, personas.alice)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
        )
        (available,) = cursor.fetchone()
        cursor.execute("SELECT pg_column_compression(text), length(text) FROM xds_entrytext")
        (compression, length) = cursor.fetchone()
    assert length > 2000  # long enough to be compressed
    assert compression == ("lz4" if available else "pglz")


def test_ebrim_writes_a_rendered_entry_behind_its_opening_tag():
    rendered = ebrim.RenderedEntry(
        entry_uuid="urn:uuid:e",
        mime_type="text/xml",
        status="Approved",
        body=' lid="l"></rim:ExtrinsicObject>',
    )
    assert ebrim.RegistryObjects(documents=[rendered]).text(ebrim.new_ids()) == (
        f'<rim:ExtrinsicObject id="urn:uuid:e" mimeType="text/xml" objectType="{ebrim.OBJECT_TYPE_STABLE}" '
        'status="urn:oasis:names:tc:ebxml-regrep:StatusType:Approved" lid="l"></rim:ExtrinsicObject>'
    )


# The digest of what the writer writes for one fixed entry, for each of its shapes: a change of
# the writer changes the digest, and fails here until `ebrim.ENTRY_TEXT_SHAPE` is raised (the
# stored texts of the earlier shape are then written again) and its digest recorded.
SHAPE_DIGESTS = {1: "ddc2ce2a04ffee81b90d139a480823f97110d073d945e6c5ec0612a436fdc24b"}


def test_the_writer_s_shape_is_raised_with_any_change_of_what_it_writes(monkeypatch):
    class FixedIds(ebrim._Ids):
        def __init__(self) -> None:
            super().__init__()
            self._head = "urn:uuid:00000000-0000-4000-8000-"

    monkeypatch.setattr(ebrim, "_Ids", FixedIds)
    code = CodedValue(code="11488-4", scheme="2.16.840.1.113883.6.1", display="Compte rendu")
    entry = ebrim.StoredEntry(
        entry_uuid="urn:uuid:4c6b0b5e-1c1a-4c4a-9d44-1f2b3c4d5e6f",
        unique_id="1.2.250.1.999.1.42",
        mime_type="text/xml",
        class_code=code,
        type_code=code,
        format_code=code,
        healthcare_facility_type_code=code,
        practice_setting_code=code,
        confidentiality_codes=(code, code),
        event_codes=(code,),
        title="Compte rendu « é »",
        comments="Deux\nlignes",
        language_code="fr-FR",
        creation_time=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        service_start_time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        service_stop_time=dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
        patient_id="1234567890123^^^&1.2.250.1.213.1.4.8&ISO^NH",
        source_patient_id="42^^^&1.2.3&ISO",
        source_patient_info=("PID-5|MARTIN^Alice",),
        legal_authenticator="810001234567^DUPONT^Jean",
        reference_ids=("1.2.3^^^&1.2.250.1.999&ISO^urn:ihe:iti:xds:2013:order",),
        authors=(Author(person="810001234567^DUPONT^Jean", institutions=("Cabinet",), roles=("10",)),),
    )
    extras = ebrim.RegistryExtras(
        status="Approved",
        repository_unique_id="1.2.250.1.999.2",
        hash_sha1="a" * 40,
        size=1234,
        logical_id="urn:uuid:0b7f6a2e-3d7c-4f8a-9e1b-2c3d4e5f6a7b",
        version="2",
    )
    digest = hashlib.sha256(ebrim.entry_body_text(entry, extras).encode()).hexdigest()
    assert SHAPE_DIGESTS.get(ebrim.ENTRY_TEXT_SHAPE) == digest, digest


def test_a_text_of_an_earlier_shape_of_the_writer_is_written_again(personas, monkeypatch):
    bernard = personas.ps(personas.dr_bernard)
    document = published(bernard, personas.alice)
    assert set(entry_texts.texts_of([document.pk])) == {document.pk}
    monkeypatch.setattr(ebrim, "ENTRY_TEXT_SHAPE", ebrim.ENTRY_TEXT_SHAPE + 1)
    assert entry_texts.texts_of([document.pk]) == {}
    assert list(entry_texts.write_missing()) == [1]
    assert EntryText.objects.get(document_id=document.pk).shape == ebrim.ENTRY_TEXT_SHAPE
    assert set(entry_texts.texts_of([document.pk])) == {document.pk}
