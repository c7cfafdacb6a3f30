"""The ebRIM writer gives back, through the parser, exactly the metadata it was given."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from dmp.common.xml import parse_xml, xml_bytes
from dmp.documents.builders import DocumentDraft, author_for, submission_for
from dmp.documents.metadata import Author, CodedValue, DocumentInput, SubmissionInput
from dmp.identity.ins import InsAuthority, make_nir, parse_ins
from dmp.ihe.xds import ebrim, soap
from dmp.ihe.xds.ebrim import RIM, q

INS = parse_ins(
    make_nir(sex=1, year=1984, month=5, department="74", commune=123, order=456), InsAuthority.TEST_NIR
)
AUTHOR = author_for(person_id="810000010016", family_name="LEFÈVRE", given_name="Bernard", structure_id="31")

# Any text XML 1.0 can carry, markup characters, line breaks and tabs included; pydantic strips
# the ends of strings, so values are drawn already stripped.
xml_text = (
    st.text(
        st.characters(
            blacklist_categories=["Cs"],
            blacklist_characters="\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14"
            "\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\ufffe\uffff",
        )
        | st.sampled_from("&<>\"'\n\r\t]]>"),
        max_size=40,
    )
    .map(str.strip)
    .filter(bool)
)


@pytest.fixture(scope="module")
def submission() -> SubmissionInput:
    return submission_for(ins=INS, author=AUTHOR, drafts=[DocumentDraft()])


def _round_trip(submission: SubmissionInput, document: DocumentInput) -> DocumentInput:
    changed = submission.model_copy(update={"documents": (document,)})
    request = parse_xml(xml_bytes(ebrim.submit_objects_request(changed)))
    return ebrim.parse_submission(request, {document.entry_uuid: document.content}).documents[0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=xml_text, comments=xml_text, code=xml_text, display=xml_text, person=xml_text, info=xml_text)
@example(title="a\rb\r\nc", comments="a\tb\nc", code='<"&>', display="x]]>y", person="a\rb", info="1\r\n2")
def test_any_text_survives_writing_and_parsing(
    submission: SubmissionInput, title: str, comments: str, code: str, display: str, person: str, info: str
) -> None:
    original = submission.documents[0]
    document = original.model_copy(
        update={
            "title": title,
            "comments": comments,
            "event_codes": (CodedValue(code=code, scheme="1.2.250.1.213.2.12", display=display),),
            "source_patient_info": (f"PID-5|{info}",),
            "authors": (Author(person=person, institutions=(f"{display}^^^^^^^^^1.2.250.1.71.4.2.2&ISO",)),),
        }
    )
    parsed = _round_trip(submission, document)
    assert (parsed.title, parsed.comments) == (title, comments)
    assert parsed.event_codes == document.event_codes
    assert parsed.source_patient_info == document.source_patient_info
    assert (parsed.authors[0].person, parsed.authors[0].institutions) == (
        person,
        document.authors[0].institutions,
    )
    assert parsed.class_code == original.class_code
    assert parsed.confidentiality_codes == original.confidentiality_codes
    assert parsed.unique_id == original.unique_id


def test_registry_objects_are_written_in_ascii_whatever_their_text(submission: SubmissionInput) -> None:
    """Beyond ASCII, characters are written as references: the answer stays an ASCII string,
    whose encoding is a copy, and parses back to the same text."""
    document = submission.documents[0].model_copy(
        update={
            "title": "Compte rendu opératoire – cœur 心",
            "event_codes": (CodedValue(code="É1", scheme="1.2.3", display="Échographie 😀"),),
        }
    )
    text = ebrim.RegistryObjects(documents=[(document, None)]).text(ebrim.new_ids())
    assert text.isascii()
    assert "&#233;" in text  # the é of the title, and of LEFÈVRE's È below
    assert "&#200;" in text
    parsed = _round_trip(submission, document)
    assert parsed.title == "Compte rendu opératoire – cœur 心"
    assert parsed.event_codes == document.event_codes
    assert parsed.authors[0].person == document.authors[0].person


def test_registry_extras_are_written(submission: SubmissionInput) -> None:
    holder = etree.Element(q(RIM, "RegistryObjectList"), nsmap={"rim": RIM})
    extras = ebrim.RegistryExtras(
        status="Deprecated",
        repository_unique_id="1.2.3",
        hash_sha1="ab" * 20,
        size=42,
        logical_id="urn:uuid:l",
        version="3",
    )
    (entry,) = ebrim.RegistryObjects(documents=[(submission.documents[0], extras)]).append_to(
        holder, ebrim.new_ids()
    )
    assert entry.getparent() is holder
    assert entry.get("status") == ebrim.STATUS_PREFIX + "Deprecated"
    assert entry.get("lid") == "urn:uuid:l"
    version = entry.find(q(RIM, "VersionInfo"))
    assert version is not None
    assert version.get("versionName") == "3"
    values = ebrim.slots(entry)
    assert (values["size"], values["hash"], values["repositoryUniqueId"]) == (["42"], ["ab" * 20], ["1.2.3"])
    # One namespace declaration, on the list, as if the entry had been built in place.
    assert etree.tostring(holder).count(b"xmlns:rim") == 1


def test_sub_object_ids_are_unique_within_a_message(submission: SubmissionInput) -> None:
    documents = [submission.documents[0].model_copy(update={"entry_uuid": f"Document{i}"}) for i in range(30)]
    request = ebrim.submit_objects_request(submission.model_copy(update={"documents": tuple(documents)}))
    ids = [element.get("id") for element in request.iter() if element.get("id")]
    assert len(ids) == len(set(ids)) > 30 * 10


def test_text_xml_cannot_carry_is_refused_like_lxml_does(submission: SubmissionInput) -> None:
    holder = etree.Element(q(RIM, "RegistryObjectList"), nsmap={"rim": RIM})
    document = submission.documents[0].model_copy(update={"title": "bell \x07"})
    with pytest.raises(ValueError, match="XML compatible"):
        ebrim.RegistryObjects(documents=[(document, None)]).append_to(holder, ebrim.new_ids())
    assert len(holder) == 0
    # Code and author fragments are memoised: a refused one is refused again, never kept.
    bell = CodedValue(code="x", scheme="1.2.3", display="bell \x07")
    coded = submission.documents[0].model_copy(update={"event_codes": (bell,)})
    authored = submission.documents[0].model_copy(update={"authors": (Author(person="bell \x07"),)})
    for refused in (coded, coded, authored, authored):
        with pytest.raises(ValueError, match="XML compatible"):
            ebrim.RegistryObjects(documents=[(refused, None)]).append_to(holder, ebrim.new_ids())
    assert len(holder) == 0


def test_spliced_entries_read_like_entries_built_in_the_tree(submission: SubmissionInput) -> None:
    entries: list[tuple[DocumentInput, ebrim.RegistryExtras | None]] = [
        (submission.documents[0], ebrim.RegistryExtras(version="1"))
    ]
    built = etree.Element(q(RIM, "RegistryObjectList"), nsmap={"rim": RIM})
    ebrim.RegistryObjects(documents=entries).append_to(built, FixedIds())
    spliced = etree.Element(q(RIM, "RegistryObjectList"), nsmap={"rim": RIM})
    soap.splice_point(spliced, "k1")
    text = ebrim.RegistryObjects(documents=entries).text(FixedIds()).encode()
    _, data = soap.encode(soap.envelope("urn:a", spliced), "urn:a", splices={"k1": text})
    received = soap.parse_message(soap.SOAP_TYPE, data).body

    def canonical(holder: etree._Element) -> list[bytes]:
        return [etree.tostring(entry, method="c14n", exclusive=True) for entry in holder]

    assert len(received) == 1
    assert canonical(received) == canonical(built)


def test_a_splice_without_its_point_is_an_error() -> None:
    root = etree.Element(q(RIM, "RegistryObjectList"), nsmap={"rim": RIM})
    with pytest.raises(ValueError, match="exactly once"):
        soap.encode(soap.envelope("urn:a", root), "urn:a", splices={"missing": b"<rim:X/>"})


class FixedIds(ebrim.new_ids):
    """Predictable sub-object ids, so two writings of the same entries can be compared."""

    def __call__(self) -> str:
        self._next += 1
        return f"urn:uuid:00000000-0000-4000-8000-{self._next:012x}"


def test_several_slots_of_one_name_are_separate_groups() -> None:
    """ITI-18: values within a slot are OR'd, slots of the same name AND'd (event and
    confidentiality codes, folder codes); the merged view stays for every other parameter."""
    from dmp.ihe.xds.queries import parse_query
    from opendmp_client.xds import stored_query_request

    request = stored_query_request(
        "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d",
        {"$XDSDocumentEntryEventCodeList": ["('a^^1','b^^1')"], "$XDSDocumentEntryStatus": "('x')"},
    )
    adhoc = request.find(q(RIM, "AdhocQuery"))
    assert adhoc is not None
    second = etree.SubElement(adhoc, q(RIM, "Slot"), name="$XDSDocumentEntryEventCodeList")
    etree.SubElement(etree.SubElement(second, q(RIM, "ValueList")), q(RIM, "Value")).text = "('c^^1')"
    parsed = parse_query(request)
    assert parsed.groups("$XDSDocumentEntryEventCodeList") == [["a^^1", "b^^1"], ["c^^1"]]
    assert parsed.values("$XDSDocumentEntryEventCodeList") == ["a^^1", "b^^1", "c^^1"]


def test_dtm_is_written_in_utc_to_the_second_and_read_back():
    from dmp.ihe.xds.ebrim import format_dtm, parse_dtm

    paris = dt.timezone(dt.timedelta(hours=1))
    assert format_dtm(dt.datetime(2026, 1, 1, 0, 30, 59, 999999, tzinfo=paris)) == "20251231233059"
    assert format_dtm(dt.datetime(987, 6, 5, 4, 3, 2, tzinfo=dt.UTC)) == "09870605040302"  # YYYY, padded
    moment = dt.datetime(2026, 12, 5, 13, 4, 5, tzinfo=dt.UTC)
    assert parse_dtm(format_dtm(moment)) == moment
