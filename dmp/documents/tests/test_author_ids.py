# mypy: disable-error-code="union-attr,arg-type"
"""The authors' ids stored with a document entry (`DocumentEntry.author_ids`) are its author
rows' pairs, in order, for every way of storing one; an entry stored before the column is read
from its rows, and both give the access decision the same authors."""

from __future__ import annotations

import pytest

from dmp.demo.generator import generate_population
from dmp.demo.scenarios import author_info
from dmp.documents.access import document_facts, one_document
from dmp.documents.builders import DocumentDraft, submission_for
from dmp.documents.models import DocumentAuthor, DocumentEntry
from dmp.documents.rows import AuthorPairs, author_pairs
from dmp.documents.services import submission_register

pytestmark = pytest.mark.django_db


def _rows_pairs(document: DocumentEntry) -> tuple[tuple[str, str], ...]:
    return tuple(
        DocumentAuthor.objects.filter(document=document)
        .order_by("position")
        .values_list("person_id", "structure_id")
    )


def _two_authors(personas) -> DocumentEntry:
    submission = submission_for(
        ins=personas.alice.identifier,
        author=author_info(personas.dr_bernard, personas.cabinet),
        drafts=[DocumentDraft(title="Deux auteurs"), DocumentDraft(title="Un auteur")],
    )
    first = submission.documents[0]
    second = author_info(personas.dr_moreau, personas.chu, hospital=True)
    submission = submission.model_copy(
        update={
            "documents": (
                first.model_copy(update={"authors": (*first.authors, second.xds())}),
                *submission.documents[1:],
            )
        }
    )
    submission_register(caller=personas.ps(personas.dr_bernard), submission=submission)
    return DocumentEntry.objects.get(unique_id=first.unique_id)


def test_a_registered_entry_stores_its_author_rows_pairs_in_order(personas):
    document = _two_authors(personas)
    assert _rows_pairs(document) == (
        (personas.dr_bernard.national_id, personas.cabinet.id_nat),
        (personas.dr_moreau.national_id, personas.chu.id_nat),
    )
    for entry in DocumentEntry.objects.filter(record=document.record):
        assert entry.author_ids is not None
        assert author_pairs(entry.author_ids) == _rows_pairs(entry)


def test_an_entry_without_stored_ids_is_read_from_its_rows_with_the_same_decision(personas):
    document = _two_authors(personas)
    stored = one_document(unique_id=document.unique_id)
    DocumentEntry.objects.filter(pk=document.pk).update(author_ids=None)
    from_rows = one_document(unique_id=document.unique_id)
    assert from_rows.author_pairs == stored.author_pairs == _rows_pairs(document)
    assert document_facts(from_rows) == document_facts(stored)
    # The stored text is what the reads take: one that disagreed with the rows would win (the
    # writers derive both from one list, in one transaction).
    DocumentEntry.objects.filter(pk=document.pk).update(author_ids='[["p","s"]]')
    read = DocumentEntry.objects.annotate(pairs=AuthorPairs()).get(pk=document.pk)
    assert author_pairs(read.pairs) == (("p", "s"),)


def test_the_demo_generator_stores_its_entries_author_ids(db):
    generate_population(patients=3, seed=7)
    generated = DocumentEntry.objects.exclude(author_ids=None)
    assert generated.exists()
    for entry in generated:
        assert author_pairs(entry.author_ids) == _rows_pairs(entry)
