"""Who may access the record is read, not managed: a closed record's patient and a minor in
secret connection still see the list on "Mes accès" and in the summary PDF, and change nothing."""

from __future__ import annotations

import pytest
from django.test import Client

from dmp.accounts.services import account_activate, account_initialise
from dmp.accounts.tests.helpers import PASSWORD, active_account, last_code
from dmp.records.models import Authorisation, ClosureReason
from dmp.records.services import record_close

from .test_patient_portal import login, url

pytestmark = pytest.mark.django_db


def rows(record):
    return sorted(
        Authorisation.objects.filter(record=record).values_list("grantee_id", "status", "is_medecin_traitant")
    )


def change_request(personas):
    return {
        "grantee_kind": "PS",
        "grantee_id": personas.dr_petit.national_id,
        "grantee_name": personas.dr_petit.display_name,
        "change": "grant",
    }


def test_the_holder_of_a_closed_record_still_sees_who_had_access(personas):
    active_account(personas)
    alice_client = Client()
    login(alice_client)
    record = personas.alice.record
    record_close(caller=personas.patient(personas.alice), record=record, reason=ClosureReason.PATIENT_REQUEST)
    page = alice_client.get(url("access"))
    assert page.status_code == 200
    assert personas.dr_moreau.national_id in page.content.decode()
    summary = alice_client.get(url("summary_pdf"))
    assert summary.status_code == 200
    assert summary["Content-Type"] == "application/pdf"
    # Reading is all: the closed record's access rights do not change.
    before = rows(record)
    refused = alice_client.post(url("access_change"), change_request(personas))
    assert refused.status_code in {403, 404}
    assert rows(record) == before


def test_a_minor_in_secret_connection_sees_who_has_access_and_changes_nothing(personas):
    record = personas.leo.record
    code = account_initialise(
        caller=personas.ps(personas.dr_bernard), record=record, otp_destination="leo@example.org"
    )
    account_activate(code=code, identifier="leo.martin", password=PASSWORD)
    minor = Client()
    minor.post(url("login"), {"identifier": "leo.martin", "password": PASSWORD, "secret_connection": "on"})
    minor.post(url("login_code"), {"code": last_code("leo@example.org")})
    page = minor.get(url("access"))
    assert page.status_code == 200
    # Only the list: the controls the minor may not use are not offered.
    content = page.content.decode()
    assert url("access_change") not in content
    assert url("access_oppositions") not in content
    assert "Ces réglages ne peuvent pas être modifiés dans cette connexion." in content
    assert minor.get(url("summary_pdf")).status_code == 200
    before = rows(record)
    refused = minor.post(url("access_change"), change_request(personas))
    assert refused.status_code in {403, 404}
    assert rows(record) == before
