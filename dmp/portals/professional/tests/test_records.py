"""Finding a record by INS (TD0.2), creating one, médecin traitant, authorisations, emergencies, traces."""

from __future__ import annotations

import pytest

from dmp.access.actors import AccessMode
from dmp.audit.actions import AuditAction
from dmp.audit.models import AuditEvent
from dmp.identity.models import Patient
from dmp.records.models import Authorisation, GranteeKind, Record
from dmp.records.services import oppositions_set


def search(client, patient_or_ins, authority=None):
    if isinstance(patient_or_ins, Patient):
        ins, authority = patient_or_ins.ins, patient_or_ins.ins_authority
    else:
        ins = patient_or_ins
    return client.post("/pro/recherche", {"ins": ins, "authority": authority})


def test_an_authorised_ps_finds_the_record_with_its_status_and_rights(personas, login):
    client = login(personas.dr_bernard)
    response = search(client, personas.alice)
    record = personas.alice.record
    assert response.status_code == 302
    assert response["Location"] == f"/pro/dossier/{record.public_id}/"
    page = client.get(response["Location"]).content.decode()
    assert "MARTIN" in page
    assert 'id="authorisation">autorisé' in page
    assert 'id="mt">oui' in page
    assert AuditEvent.objects.filter(
        action=AuditAction.RECORD_TEST, actor_id=personas.dr_bernard.national_id
    ).exists()


def test_a_malformed_ins_is_a_form_error(personas, login):
    client = login(personas.dr_bernard)
    response = search(client, "123", personas.alice.ins_authority)
    assert response.status_code == 200
    assert "INS invalide" in response.content.decode()


def test_a_blocked_ps_is_told_so_and_sees_nothing(personas, login):
    client = login(personas.dr_durand)
    response = search(client, personas.alice)
    page = response.content.decode()
    assert response.status_code == 200
    assert "interdit" in page
    assert "MARTIN" not in page
    record = personas.alice.record
    for path in ("documents", "autorisations", "document/x/"):
        assert client.get(f"/pro/dossier/{record.public_id}/{path}").status_code == 404
    # TD0.2 answers a blocked PS that it is blocked, and nothing about the patient.
    status = client.get(f"/pro/dossier/{record.public_id}/").content.decode()
    assert 'id="authorisation">interdit' in status
    assert "MARTIN" not in status
    assert 'id="open-documents"' not in status
    # Break-glass does not lift a block either.
    response = client.post(
        f"/pro/dossier/{record.public_id}/urgence", {"mode": "bris_de_glace", "reason": "Urgence vitale"}
    )
    assert response.status_code == 403
    assert client.session["pro"]["emergency"] is None


def test_without_a_record_the_ps_creates_one_with_consent_and_oppositions(personas, login):
    client = login(personas.dr_moreau)
    bob = personas.bob_traits
    response = search(client, bob.ins, bob.ins_authority)
    assert "pas de DMP" in response.content.decode()
    assert 'id="create-form"' in response.content.decode()
    data = {
        "ins": bob.ins,
        "authority": bob.ins_authority,
        "birth_family_name": "Dubois",
        "given_names": "Bob",
        "birth_date": "1990-06-21",
        "sex": "M",
        "consent": "on",
        "opposes_break_glass": "on",
    }
    created = client.post("/pro/dossier/creer", data)
    assert created.status_code == 302
    record = Record.objects.get(patient__ins=bob.ins)
    assert record.opposes_break_glass
    assert not record.opposes_centre_15
    assert (
        Authorisation.objects.get(record=record, grantee_id=personas.dr_moreau.national_id).status == "VALIDE"
    )
    assert client.get(created["Location"]).status_code == 200
    again = client.post("/pro/dossier/creer", data)
    assert again.status_code == 409
    assert Record.objects.filter(patient__ins=bob.ins).count() == 1


def test_a_record_is_not_created_without_consent(personas, login):
    client = login(personas.dr_moreau)
    bob = personas.bob_traits
    response = client.post(
        "/pro/dossier/creer",
        {
            "ins": bob.ins,
            "authority": bob.ins_authority,
            "birth_family_name": "Dubois",
            "given_names": "Bob",
            "birth_date": "1990-06-21",
            "sex": "M",
        },
    )
    assert response.status_code == 400
    assert not Record.objects.filter(patient__ins=bob.ins).exists()
    assert not Patient.objects.filter(ins=bob.ins).exists()


def test_an_authorised_doctor_becomes_medecin_traitant_then_manages_authorisations(personas, login):
    client = login(personas.dr_moreau)
    record = personas.alice.record
    assert client.get(f"/pro/dossier/{record.public_id}/autorisations").status_code == 404
    response = client.post(f"/pro/dossier/{record.public_id}/medecin-traitant", {"declare": "1"})
    assert response.status_code == 302
    assert Authorisation.objects.get(
        record=record, grantee_id=personas.dr_moreau.national_id
    ).is_medecin_traitant
    page = client.get(f"/pro/dossier/{record.public_id}/autorisations")
    assert page.status_code == 200
    assert personas.dr_durand.national_id in page.content.decode()
    changed = client.post(
        f"/pro/dossier/{record.public_id}/autorisations",
        {
            "grantee_kind": GranteeKind.PROFESSIONAL,
            "grantee_id": personas.dr_petit.national_id,
            "change": "grant",
        },
    )
    assert changed.status_code == 302
    assert (
        Authorisation.objects.get(record=record, grantee_id=personas.dr_petit.national_id).status == "VALIDE"
    )


def test_a_non_medecin_traitant_cannot_change_authorisations(personas, login):
    client = login(personas.nurse_robert)
    record = personas.alice.record
    response = client.post(
        f"/pro/dossier/{record.public_id}/autorisations",
        {
            "grantee_kind": GranteeKind.PROFESSIONAL,
            "grantee_id": personas.dr_durand.national_id,
            "change": "grant",
        },
    )
    assert response.status_code == 403
    assert (
        Authorisation.objects.get(record=record, grantee_id=personas.dr_durand.national_id).status
        == "INTERDIT"
    )
    # A nurse may not declare itself médecin traitant.
    refused = client.post(f"/pro/dossier/{record.public_id}/medecin-traitant", {"declare": "1"})
    assert refused.status_code == 403
    assert not Authorisation.objects.get(
        record=record, grantee_id=personas.nurse_robert.national_id
    ).is_medecin_traitant


def test_break_glass_opens_the_record_with_a_permanent_banner(personas, login):
    client = login(personas.dr_petit)
    record = personas.alice.record
    assert client.get(f"/pro/dossier/{record.public_id}/documents").status_code == 404
    status = client.get(f"/pro/dossier/{record.public_id}/").content.decode()
    assert 'id="emergency-form"' in status
    missing_reason = client.post(
        f"/pro/dossier/{record.public_id}/urgence", {"mode": "bris_de_glace", "reason": " "}
    )
    assert missing_reason.status_code == 400
    assert client.session["pro"]["emergency"] is None
    opened = client.post(
        f"/pro/dossier/{record.public_id}/urgence",
        {"mode": "bris_de_glace", "reason": "Patiente inconsciente"},
    )
    assert opened.status_code == 302
    page = client.get(f"/pro/dossier/{record.public_id}/documents").content.decode()
    assert 'id="emergency-banner"' in page
    assert "BRIS DE GLACE" in page
    assert "Patiente inconsciente" in page
    assert 'id="emergency-banner"' in client.get("/pro/traces").content.decode()
    assert AuditEvent.objects.filter(
        actor_id=personas.dr_petit.national_id,
        access_mode=AccessMode.BREAK_GLASS,
        access_reason="Patiente inconsciente",
    ).exists()
    # The mode applies to that record only, and ends on request.
    client.post("/pro/urgence/fin")
    assert client.get(f"/pro/dossier/{record.public_id}/documents").status_code == 404


def test_break_glass_is_refused_when_the_patient_opposed_it(personas, login):
    record = personas.alice.record
    oppositions_set(caller=personas.patient(personas.alice), record=record, break_glass=True, centre_15=False)
    client = login(personas.dr_petit)
    response = client.post(
        f"/pro/dossier/{record.public_id}/urgence", {"mode": "bris_de_glace", "reason": "Urgence vitale"}
    )
    assert response.status_code == 403
    assert 'id="emergency-refused"' in response.content.decode()
    assert client.session["pro"]["emergency"] is None
    assert client.get(f"/pro/dossier/{record.public_id}/documents").status_code == 404
    assert AuditEvent.objects.filter(
        actor_id=personas.dr_petit.national_id, outcome="denied", reason="break_glass_opposed"
    ).exists()


@pytest.mark.parametrize(("who", "allowed"), [("dr_benali", True), ("dr_petit", False)])
def test_centre_15_mode_is_for_the_regulator_only(personas, login, who, allowed):
    record = personas.alice.record
    client = login(getattr(personas, who))
    response = client.post(
        f"/pro/dossier/{record.public_id}/urgence", {"mode": "centre_15", "reason": "Appel 15"}
    )
    assert (response.status_code == 302) is allowed
    if allowed:
        assert "CENTRE 15" in client.get(f"/pro/dossier/{record.public_id}/documents").content.decode()


def test_home_lists_authorised_records_and_traces_list_own_actions(personas, login):
    client = login(personas.dr_bernard)
    home = client.get("/pro/").content.decode()
    assert "MARTIN Alice" in home
    assert "GIRARD" not in home  # closed record
    search(client, personas.alice)
    traces = client.get("/pro/traces").content.decode()
    assert "record test" in traces
    assert "ps_portal" in traces
    other = login(personas.dr_moreau).get("/pro/traces").content.decode()
    assert "record test" not in other


def test_a_ps_with_several_structures_switches_and_ends_any_emergency(personas, login):
    from dmp.identity.models import Affiliation

    Affiliation.objects.create(professional=personas.dr_petit, structure=personas.samu)
    client = login(personas.dr_petit)
    client.post("/pro/structure", {"structure": personas.samu.id_nat})
    assert client.session["pro"]["structure"] == personas.samu.id_nat
    client.post("/pro/structure", {"structure": personas.pharmacy.id_nat})  # not affiliated: ignored
    assert client.session["pro"]["structure"] == personas.samu.id_nat


def test_a_ps_records_the_patients_consent_to_its_own_access(personas, login):
    client = login(personas.dr_petit)
    record = personas.alice.record
    status = client.get(f"/pro/dossier/{record.public_id}/").content.decode()
    assert 'id="self-authorisation-form"' in status
    unconfirmed = client.post(f"/pro/dossier/{record.public_id}/autorisation", {"grant": "1"})
    assert unconfirmed.status_code == 302
    assert not Authorisation.objects.filter(record=record, grantee_id=personas.dr_petit.national_id).exists()
    client.post(f"/pro/dossier/{record.public_id}/autorisation", {"grant": "1", "confirm": "on"})
    assert (
        Authorisation.objects.get(record=record, grantee_id=personas.dr_petit.national_id).status == "VALIDE"
    )
    assert client.get(f"/pro/dossier/{record.public_id}/documents").status_code == 200
    client.post(f"/pro/dossier/{record.public_id}/autorisation", {"grant": "0"})
    assert client.get(f"/pro/dossier/{record.public_id}/documents").status_code == 404


def test_a_blocked_ps_cannot_authorise_itself(personas, login):
    client = login(personas.dr_durand)
    record = personas.alice.record
    response = client.post(f"/pro/dossier/{record.public_id}/autorisation", {"grant": "1", "confirm": "on"})
    assert response.status_code in {403, 404}
    assert (
        Authorisation.objects.get(record=record, grantee_id=personas.dr_durand.national_id).status
        == "INTERDIT"
    )


def test_an_authorised_ps_hands_over_a_web_account_activation_code(personas, login):
    from dmp.accounts.models import WebAccount
    from dmp.accounts.services import account_activate

    record = personas.alice.record
    client = login(personas.dr_bernard)
    status = client.get(f"/pro/dossier/{record.public_id}/").content.decode()
    assert 'id="web-account-form"' in status
    response = client.post(
        f"/pro/dossier/{record.public_id}/acces-web", {"channel": "email", "destination": ""}
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    code = response.content.decode().split('id="activation-code">')[1].split("<")[0]
    account = WebAccount.objects.get(record=record, representative=None)
    assert code not in account.activation_code_hash
    assert account.otp_destination == personas.alice.email
    activated = account_activate(code=code, identifier="alice.m", password="Une phrase de passe longue 42!")
    assert activated.status == WebAccount.Status.ACTIVE
    record.refresh_from_db()
    assert record.web_account_opened


def test_web_account_refusals_change_nothing(personas, login):
    from dmp.accounts.models import WebAccount

    record = personas.alice.record
    # Not authorised on the record: nothing to hand over.
    outsider = login(personas.dr_petit)
    assert outsider.post(f"/pro/dossier/{record.public_id}/acces-web", {"channel": "email"}).status_code in {
        403,
        404,
    }
    # A bad channel is a form error.
    client = login(personas.dr_bernard)
    refused = client.post(f"/pro/dossier/{record.public_id}/acces-web", {"channel": "pigeon"})
    assert refused.status_code == 400
    assert 'id="id_channel_error"' in refused.content.decode()
    assert not WebAccount.objects.filter(record=record).exists()


@pytest.mark.parametrize(
    ("channel", "destination", "message"),
    [
        ("email", "pas une adresse", "Saisissez une adresse électronique valide."),
        ("email", "alice@", "Saisissez une adresse électronique valide."),
        ("sms", "alice@example.org", "Saisissez un numéro de téléphone mobile"),
        ("sms", "01 23 45 67 89", "Saisissez un numéro de téléphone mobile"),
    ],
)
def test_a_web_account_destination_must_fit_its_channel(personas, login, channel, destination, message):
    from dmp.accounts.models import WebAccount

    record = personas.alice.record
    client = login(personas.dr_bernard)
    refused = client.post(
        f"/pro/dossier/{record.public_id}/acces-web", {"channel": channel, "destination": destination}
    )
    assert refused.status_code == 400
    assert f'id="id_destination_error"><p class="error">{message}' in refused.content.decode()
    assert not WebAccount.objects.filter(record=record).exists()
    record.refresh_from_db()
    assert not record.web_account_opened


def test_a_web_account_by_sms_keeps_a_mobile_number(personas, login):
    from dmp.accounts.models import WebAccount

    record = personas.alice.record
    client = login(personas.dr_bernard)
    response = client.post(
        f"/pro/dossier/{record.public_id}/acces-web", {"channel": "sms", "destination": "06 12 34 56 78"}
    )
    assert response.status_code == 200
    assert WebAccount.objects.get(record=record, representative=None).otp_destination == "0612345678"


def test_a_blocked_ps_is_refused_the_upload_as_blocked_and_deposits_nothing(personas, login):
    """Refused as SOAP and FHIR refuse its feeding (403, blocked), not told the record is unknown."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from dmp.cda.builder import simple_pdf
    from dmp.documents.models import DocumentEntry

    client = login(personas.dr_durand)
    record = personas.alice.record
    before = DocumentEntry.objects.count()
    page = client.get(f"/pro/dossier/{record.public_id}/ajouter")
    assert page.status_code == 403
    assert "Le patient vous a interdit l&#x27;accès à son DMP" in page.content.decode()
    assert "MARTIN" not in page.content.decode()
    assert 'name="file"' not in page.content.decode()
    refused = client.post(
        f"/pro/dossier/{record.public_id}/ajouter",
        {
            "type_code": "11488-4",
            "title": "CR",
            "visibility": "normal",
            "file": SimpleUploadedFile("a.pdf", simple_pdf("A", ["x"])),
        },
    )
    assert refused.status_code == 403
    assert "Le patient vous a interdit l&#x27;accès à son DMP" in refused.content.decode()
    assert "MARTIN" not in refused.content.decode()
    assert DocumentEntry.objects.count() == before


def test_a_future_birth_date_is_a_form_error_on_its_field(personas, login):
    client = login(personas.dr_moreau)
    bob = personas.bob_traits
    response = client.post(
        "/pro/dossier/creer",
        {
            "ins": bob.ins,
            "authority": bob.ins_authority,
            "birth_family_name": "Dubois",
            "given_names": "Bob",
            "birth_date": "2999-06-21",
            "sex": "M",
            "consent": "on",
        },
    )
    assert response.status_code == 400
    assert (
        'id="id_birth_date_error"><p class="error">La date de naissance ne peut pas être dans le futur.'
        in (response.content.decode())
    )
    # The field names its error for screen readers (RGAA 11.10): the id Django points to exists.
    assert 'aria-describedby="id_birth_date_error"' in response.content.decode()
    assert not Patient.objects.filter(ins=bob.ins).exists()
    assert not Record.objects.filter(patient__ins=bob.ins).exists()


def test_a_name_with_a_control_character_is_a_form_error_on_its_field(personas, login):
    """A stored U+0001 in a patient's name made every HL7v3 TD0.2 answer a server error and every
    CDA built for the record fail (found by review): refused on the field, nothing created."""
    client = login(personas.dr_moreau)
    bob = personas.bob_traits
    response = client.post(
        "/pro/dossier/creer",
        {
            "ins": bob.ins,
            "authority": bob.ins_authority,
            "birth_family_name": "Du\x01bois",
            "given_names": "Bob",
            "birth_date": "1990-06-21",
            "sex": "M",
            "consent": "on",
        },
    )
    assert response.status_code == 400
    assert 'id="id_birth_family_name_error"><p class="error">' in response.content.decode()
    assert not Patient.objects.filter(ins=bob.ins).exists()
    assert not Record.objects.filter(patient__ins=bob.ins).exists()
