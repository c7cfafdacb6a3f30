"""TD0.2 on FHIR answers what SOAP answers: a blocked PS learns the record exists and that it is
blocked, and the Patient carries the oppositions and the closure."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from fhir.resources.R4B.bundle import Bundle

from dmp.identity.ins import Ins, InsAuthority
from dmp.ihe.mhd.tests.test_mhd_end_to_end import INS_SYSTEM

pytestmark = pytest.mark.django_db(transaction=True)


def td02(kit, professional, patient):
    token = kit.token(professional, patient_ins=patient.identifier.hl7())
    answer = requests.get(
        f"{kit.base_url}/fhir/Patient",
        params={"identifier": f"{INS_SYSTEM}|{patient.ins}"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    bundle = answer.json()
    Bundle.model_validate(bundle)
    return bundle


def extensions(resource):
    return {
        x["url"].rsplit("/", 1)[-1]: next(v for k, v in x.items() if k != "url")
        for x in resource["extension"]
    }


def test_a_blocked_ps_is_told_the_record_exists_and_that_it_is_blocked(xds_kit, personas):
    bundle = td02(xds_kit, personas.dr_durand, personas.alice)
    assert bundle["total"] == 1
    (entry,) = bundle["entry"]
    patient = entry["resource"]
    assert extensions(patient) == {"dmp-status": "ACTIF", "dmp-authorisation": "INTERDIT"}
    # Nothing else about the patient: no id to search by, no identity.
    assert set(patient) == {"resourceType", "identifier", "extension"}
    assert patient["identifier"] == [{"system": INS_SYSTEM, "value": personas.alice.ins}]
    assert "fullUrl" not in entry
    soap = xds_kit.client(personas.dr_durand).record_test().body
    assert (soap.get("status"), soap.get("authorisation")) == ("ACTIF", "INTERDIT")


def test_the_patient_carries_the_oppositions_and_the_closure_as_soap_does(xds_kit, personas):
    bundle = td02(xds_kit, personas.dr_bernard, personas.chloe)
    found = extensions(bundle["entry"][0]["resource"])
    soap = xds_kit.client(personas.dr_bernard, patient_ins=personas.chloe.identifier.hl7()).record_test().body
    assert found["dmp-status"] == soap.get("status") == "FERME"
    assert found["dmp-opposes-break-glass"] is True
    assert soap.get("opposesBreakGlass") == "true"
    assert found["dmp-opposes-centre-15"] is False
    assert soap.get("opposesCentre15") == "false"
    assert dt.datetime.fromisoformat(found["dmp-closed-at"]) == dt.datetime.fromisoformat(
        soap.get("closedAt")
    )
    assert found["dmp-closure-reason"] == soap.get("closureReason") == "FERMETURE_DEMANDE_PATIENT"
    # An open record has no closure to tell.
    alice = extensions(td02(xds_kit, personas.dr_bernard, personas.alice)["entry"][0]["resource"])
    assert alice["dmp-opposes-break-glass"] is False
    assert "dmp-closed-at" not in alice


def test_an_unknown_patient_is_an_empty_searchset(xds_kit, personas):
    unknown = Ins(personas.bob_traits.ins, InsAuthority(personas.bob_traits.ins_authority))
    token = xds_kit.token(personas.dr_bernard, patient_ins=unknown.hl7())
    answer = requests.get(
        f"{xds_kit.base_url}/fhir/Patient",
        params={"identifier": f"urn:oid:{unknown.oid}|{unknown.value}"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 200
    assert answer.json()["total"] == 0
    assert not answer.json().get("entry")
