"""The HL7v3 TD0.2 messages, built and read by the same pure functions on both sides."""

from __future__ import annotations

import datetime as dt

import pytest
from lxml import etree

from dmp.common.errors import ErrorCode, ValidationFailed
from dmp.common.xml import parse_xml
from dmp.identity.ins import InsAuthority, make_nir, parse_ins
from dmp.ihe.xds import hl7v3

INS = parse_ins(
    make_nir(sex=2, year=1985, month=3, department="35", commune=238, order=101), InsAuthority.TEST_NIR
)


def test_round_trip_of_a_found_and_a_closed_record():
    query = hl7v3.parse_query(hl7v3.query_message(INS, sender="1.2.3"))
    assert (query.ins, query.sender) == (INS, "1.2.3")
    facts = hl7v3.DossierFacts(
        status="FERME",
        authorisation="VALIDE",
        medecin_traitant=False,
        web_account=True,
        minor=False,
        opposes_break_glass=True,
        opposes_centre_15=False,
        closed_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        closure_reason="FERMETURE_DEMANDE_PATIENT",
        family_name="MARTIN",
        given_names="Alice Marie",
        birth_date=dt.date(1985, 3, 14),
        sex="F",
    )
    answer = hl7v3.response_message(query, facts)
    assert hl7v3.read_response(parse_xml(etree.tostring(answer))) == facts
    patient = answer.find(".//{urn:hl7-org:v3}patient/{urn:hl7-org:v3}id")
    assert patient is not None
    assert (patient.get("root"), patient.get("extension")) == (INS.oid, INS.value)


def test_not_found_is_nf():
    query = hl7v3.parse_query(hl7v3.query_message(INS, sender="1.2.3"))
    empty = hl7v3.DossierFacts("INEXISTANT", "NON_EXISTE", False, False, False, False, False)
    answer = hl7v3.response_message(query, empty)
    code = answer.find(".//{urn:hl7-org:v3}queryResponseCode")
    assert code is not None
    assert code.get("code") == "NF"
    assert hl7v3.read_response(answer).status == "INEXISTANT"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: m.tag.replace("PRPA_IN201307UV02", "PRPA_IN201305UV02"), "PRPA_IN201307UV02 message"),
        (lambda m: m.find("{urn:hl7-org:v3}interactionId").set("extension", "X"), "interactionId"),
        (lambda m: m.remove(m.find("{urn:hl7-org:v3}controlActProcess")), "queryByParameter"),
        (
            lambda m: (
                m.find(".//{urn:hl7-org:v3}value").getparent().remove(m.find(".//{urn:hl7-org:v3}value"))
            ),
            "the INS",
        ),
        (lambda m: m.find(".//{urn:hl7-org:v3}value").set("extension", "123"), "15 characters"),
    ],
)
def test_malformed_queries_are_refused_precisely(mutate, message):
    request = hl7v3.query_message(INS, sender="1.2.3")
    result = mutate(request)
    if isinstance(result, str):
        request.tag = result
    with pytest.raises(ValidationFailed, match=message) as refused:
        hl7v3.parse_query(request)
    assert refused.value.problems[0].code in {ErrorCode.INVALID, ErrorCode.UNKNOWN_PATIENT}
