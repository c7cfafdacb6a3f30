"""The parents' "Mes accès" page leaves out a PS that changed its access in the minor's secret
connection (its trace is hidden from them too)."""

from __future__ import annotations

import pytest
from django.test import Client

from dmp.accounts.services import account_activate, account_initialise
from dmp.accounts.tests.helpers import PASSWORD, last_code
from dmp.records.services import authorisation_self

from .test_patient_portal import url

pytestmark = pytest.mark.django_db


def test_the_parents_access_page_does_not_name_the_ps_seen_in_secret(personas):
    authorisation_self(
        caller=personas.ps(personas.dr_petit, secret_connection=True), ins=personas.leo.identifier, grant=True
    )
    code = account_initialise(
        caller=personas.ps(personas.dr_bernard),
        record=personas.leo.record,
        representative=personas.alice_as_mother,
        otp_destination="maman@example.org",
    )
    account_activate(code=code, identifier="maman.de.leo", password=PASSWORD)
    parent = Client()
    parent.post(url("login"), {"identifier": "maman.de.leo", "password": PASSWORD})
    parent.post(url("login_code"), {"code": last_code("maman@example.org")})
    page = parent.get(url("access"))
    assert page.status_code == 200
    assert personas.dr_petit.national_id not in page.content.decode()
    assert personas.dr_bernard.national_id in page.content.decode()
