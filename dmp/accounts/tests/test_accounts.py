"""Patient web accounts: hand-over, activation, password + one-time code, lockout, TOTP."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.test import override_settings
from django.utils import timezone

from dmp.accounts import totp
from dmp.accounts.models import LoginChallenge, OutboxMessage, WebAccount
from dmp.accounts.passwords import password_problems
from dmp.accounts.services import (
    ADDRESS_BUDGET,
    MAX_FAILURES,
    LoginFailed,
    Throttled,
    account_activate,
    account_initialise,
    caller_for,
    login_start,
    login_verify,
    totp_enrol_confirm,
)
from dmp.accounts.tests.helpers import (
    IDENTIFIER,
    PASSWORD,
    active_account,
    handed_over_code,
    last_code,
)
from dmp.audit.actions import AuditAction
from dmp.audit.models import AuditEvent
from dmp.audit.verify import verify_audit_trail
from dmp.common.errors import Forbidden, NotFound, ValidationFailed
from dmp.records.services import authorisation_self


def _snapshot(account: WebAccount) -> tuple[object, ...]:
    account.refresh_from_db()
    return (account.status, account.identifier, account.password, account.activation_code_hash)


# --- hand-over and activation ----------------------------------------------------------------


def test_a_ps_hands_over_an_activation_code_that_is_stored_hashed(personas):
    code = handed_over_code(personas)
    account = WebAccount.objects.get()
    assert len(code) == 14
    assert code.count("-") == 2
    assert code not in account.activation_code_hash
    assert account.status == WebAccount.Status.PENDING
    personas.alice.record.refresh_from_db()
    assert personas.alice.record.web_account_opened
    # One trace, written with the account and the record's flag in one transaction (the flag was
    # committed first, with a trace of its own, before the account was written).
    assert AuditEvent.objects.filter(action=AuditAction.WEB_ACCOUNT_CREATE, outcome="success").count() == 1


def test_an_unauthorised_or_blocked_ps_cannot_open_an_account(personas):
    for professional in (personas.dr_petit, personas.dr_durand):
        with pytest.raises((NotFound, Forbidden)):
            account_initialise(
                caller=personas.ps(professional), record=personas.alice.record, otp_destination="x@y.fr"
            )
    assert not WebAccount.objects.exists()
    personas.alice.record.refresh_from_db()
    assert not personas.alice.record.web_account_opened


def test_a_patient_cannot_open_an_account_alone(personas):
    with pytest.raises((NotFound, Forbidden)):
        account_initialise(
            caller=personas.patient(personas.alice), record=personas.alice.record, otp_destination="x@y.fr"
        )
    assert not WebAccount.objects.exists()


def test_activation_sets_credentials_and_the_code_is_single_use(personas):
    code = handed_over_code(personas)
    account = account_activate(
        code=code.lower().replace("-", " "), identifier="Alice.Martin", password=PASSWORD
    )
    assert account.status == WebAccount.Status.ACTIVE
    assert account.identifier == "alice.martin"
    assert account.password.startswith("md5$")
    assert PASSWORD not in account.password
    before = _snapshot(account)
    with pytest.raises(LoginFailed):
        account_activate(code=code, identifier="someone.else", password=PASSWORD + "x")
    assert _snapshot(account) == before


def test_an_expired_activation_code_is_refused(personas):
    code = handed_over_code(personas)
    WebAccount.objects.update(activation_expires_at=timezone.now() - dt.timedelta(seconds=1))
    account = WebAccount.objects.get()
    before = _snapshot(account)
    with pytest.raises(LoginFailed):
        account_activate(code=code, identifier=IDENTIFIER, password=PASSWORD)
    assert _snapshot(account) == before


@pytest.mark.parametrize(
    "password",
    [
        "Court#1a",  # too short
        "toutenminusculesetlongue",  # one class only
        "Motdepasse123!",  # breached base word
        "Azertyuiop123!",  # breached base word
        "alice.martin#A1b2",  # contains the identifier
    ],
)
def test_weak_or_breached_passwords_are_refused_and_nothing_changes(personas, password):
    code = handed_over_code(personas)
    account = WebAccount.objects.get()
    before = _snapshot(account)
    with pytest.raises(ValidationFailed) as error:
        account_activate(code=code, identifier=IDENTIFIER, password=password)
    assert any(p.location == "password" for p in error.value.problems)
    assert _snapshot(account) == before
    # The code is still usable with a good password.
    account_activate(code=code, identifier=IDENTIFIER, password=PASSWORD)


def test_password_rules_follow_cnil():
    assert password_problems("Tilleul#Bleu-2026") == []
    assert password_problems("correct horse battery staple Z") == []  # 14+ with 3 classes
    assert password_problems("abcdefghijkL1") != []  # 12+ but only 3 classes and < 14
    assert password_problems("q1w2e3r4t5y6") != []  # Django's common list


def test_the_default_hasher_is_a_django_password_hasher(personas, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    account = active_account(personas)
    assert account.password.startswith("pbkdf2_sha256$")


# --- login -------------------------------------------------------------------------------------


def test_login_sends_a_one_time_code_then_succeeds_once(personas):
    active_account(personas)
    step = login_start(identifier=IDENTIFIER, password=PASSWORD)
    assert step.sent_to == "a•••@example.org"
    code = last_code()
    stored = LoginChallenge.objects.get()
    assert code not in stored.code_hash
    account = login_verify(challenge_id=step.challenge_id, code=code)
    assert account.last_login_at is not None
    assert caller_for(account).actor.person_id == personas.alice.ins
    with pytest.raises(LoginFailed):  # reuse refused
        login_verify(challenge_id=step.challenge_id, code=code)
    assert AuditEvent.objects.filter(action=AuditAction.AUTHENTICATION_SUCCESS).count() == 1
    assert verify_audit_trail().ok


def test_an_expired_one_time_code_is_refused(personas):
    active_account(personas)
    step = login_start(identifier=IDENTIFIER, password=PASSWORD)
    LoginChallenge.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    with pytest.raises(LoginFailed):
        login_verify(challenge_id=step.challenge_id, code=last_code())
    assert not WebAccount.objects.filter(last_login_at__isnull=False).exists()


def test_one_time_code_brute_force_locks_the_account(personas):
    active_account(personas)
    step = login_start(identifier=IDENTIFIER, password=PASSWORD)
    right = last_code()
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    for _ in range(MAX_FAILURES):
        with pytest.raises(LoginFailed):
            login_verify(challenge_id=step.challenge_id, code=wrong)
    # Locked: even the right code (and a fresh login with the right password) fails now.
    with pytest.raises(LoginFailed):
        login_verify(challenge_id=step.challenge_id, code=right)
    with pytest.raises(LoginFailed):
        login_start(identifier=IDENTIFIER, password=PASSWORD)
    account = WebAccount.objects.get()
    assert account.locked_until is not None
    assert account.last_login_at is None
    assert AuditEvent.objects.filter(action=AuditAction.AUTHENTICATION_FAILURE, reason="bad_otp").count() == 5


def test_wrong_passwords_lock_the_account_and_no_code_is_sent(personas):
    active_account(personas)
    for _ in range(MAX_FAILURES):
        with pytest.raises(LoginFailed):
            login_start(identifier=IDENTIFIER, password="Wrong#Password-1")
    with pytest.raises(LoginFailed):
        login_start(identifier=IDENTIFIER, password=PASSWORD)
    assert not OutboxMessage.objects.exists()
    assert not LoginChallenge.objects.exists()
    account = WebAccount.objects.get()
    assert account.locked_until is not None


def test_the_lock_expires(personas):
    active_account(personas)
    WebAccount.objects.update(locked_until=timezone.now() - dt.timedelta(seconds=1))
    assert login_start(identifier=IDENTIFIER, password=PASSWORD).challenge_id


def test_unknown_identifiers_get_the_same_answer_and_are_audited(personas):
    active_account(personas)
    errors = []
    for identifier, password in [("nobody.here", PASSWORD), (IDENTIFIER, "Wrong#Password-1")]:
        with pytest.raises(LoginFailed) as error:
            login_start(identifier=identifier, password=password)
        errors.append((type(error.value), str(error.value), error.value.code))
    assert errors[0] == errors[1]
    assert AuditEvent.objects.filter(reason="unknown_identifier").exists()


def test_an_address_that_fails_too_often_is_throttled(personas):
    active_account(personas)
    from dmp.accounts.services import ADDRESS_BUDGET

    for _ in range(ADDRESS_BUDGET):
        with pytest.raises(LoginFailed):
            login_start(identifier="nobody.here", password="x", client_address="203.0.113.9")
    with pytest.raises(Throttled):
        login_start(identifier=IDENTIFIER, password=PASSWORD, client_address="203.0.113.9")
    # Another address is not affected.
    assert login_start(identifier=IDENTIFIER, password=PASSWORD, client_address="203.0.113.10").challenge_id


def test_the_addresses_of_one_ipv6_64_share_one_failure_budget(personas):
    """Each address of a /64 had its own budget (found by review)."""
    active_account(personas)
    from dmp.accounts.services import ADDRESS_BUDGET

    for i in range(ADDRESS_BUDGET):
        with pytest.raises(LoginFailed):
            login_start(identifier="nobody.here", password="x", client_address=f"2001:db8:7:1::{i + 1:x}")
    challenges = LoginChallenge.objects.count()
    with pytest.raises(Throttled):
        login_start(identifier=IDENTIFIER, password=PASSWORD, client_address="2001:db8:7:1:9:9:9:9")
    assert LoginChallenge.objects.count() == challenges
    assert login_start(
        identifier=IDENTIFIER, password=PASSWORD, client_address="2001:db8:7:2::1"
    ).challenge_id


@override_settings(
    OPENDMP_MESSAGE_GATEWAY="smtp", EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"
)
def test_the_smtp_gateway_sends_the_code_by_e_mail(personas):
    active_account(personas)
    login_start(identifier=IDENTIFIER, password=PASSWORD)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["alice@example.org"]
    assert not OutboxMessage.objects.exists()


def test_totp_matches_rfc_6238_vectors():
    # RFC 6238 appendix B, SHA-1 secret "12345678901234567890", 8 digits.
    import base64

    secret = base64.b32encode(b"12345678901234567890").decode()
    assert totp.totp(secret, 59, digits=8) == "94287082"
    assert totp.totp(secret, 1111111109, digits=8) == "07081804"
    assert totp.totp(secret, 2000000000, digits=8) == "69279037"


def test_login_with_an_enrolled_totp_application(personas):
    account = active_account(personas)
    secret = totp.new_secret()
    now = timezone.now().timestamp()
    with pytest.raises(ValidationFailed):
        totp_enrol_confirm(
            account=account,
            secret=secret,
            code="000000" if totp.totp(secret, now) != "000000" else "111111",
            password=PASSWORD,
        )
    # The right code is not enough: the second factor changes only with the password.
    with pytest.raises(ValidationFailed):
        totp_enrol_confirm(account=account, secret=secret, code=totp.totp(secret, now), password="wrong")
    account.refresh_from_db()
    assert not account.totp_enabled
    assert account.failed_password_count == 1
    totp_enrol_confirm(account=account, secret=secret, code=totp.totp(secret, now), password=PASSWORD)
    account.refresh_from_db()
    assert secret not in account.totp_secret  # stored sealed
    step = login_start(identifier=IDENTIFIER, password=PASSWORD)
    assert step.uses_totp
    assert not OutboxMessage.objects.exists()
    code = totp.totp(secret, timezone.now().timestamp())
    assert login_verify(challenge_id=step.challenge_id, code=code).last_login_at
    # The same TOTP value cannot be replayed for another login.
    step = login_start(identifier=IDENTIFIER, password=PASSWORD)
    with pytest.raises(LoginFailed):
        login_verify(challenge_id=step.challenge_id, code=code)


def test_a_legal_representative_account_acts_for_the_minor_only(personas):
    code = account_initialise(
        caller=personas.ps(personas.dr_bernard),
        record=personas.leo.record,
        representative=personas.alice_as_mother,
        otp_destination="maman@example.org",
    )
    account = account_activate(code=code, identifier="maman.de.leo", password=PASSWORD)
    caller = caller_for(account)
    assert caller.actor.kind == "legal_representative"
    # Alice's representative record is Léo's: it does not exist for Alice's own record.
    with pytest.raises(NotFound):
        account_initialise(
            caller=personas.ps(personas.dr_bernard),
            record=personas.alice.record,
            representative=personas.alice_as_mother,
            otp_destination="maman@example.org",
        )


def test_reissuing_an_active_account_keeps_it_until_the_new_code_is_activated(personas):
    """Any authorised PS may hand over a new code (the patient lost their password or phone); it
    used to wipe the patient's credentials at once and tell nobody, so a PS typing their own
    address as destination took the account over silently."""
    active_account(personas)
    code = account_initialise(
        caller=personas.ps(personas.nurse_robert),
        record=personas.alice.record,
        otp_channel="email",
        otp_destination="new@example.org",
    )
    notice = OutboxMessage.objects.filter(destination="alice@example.org").order_by("-pk").first()
    assert notice is not None
    assert "nouvel accès" in notice.subject
    # The current credentials still work until the new code is activated.
    assert login_start(identifier=IDENTIFIER, password=PASSWORD).challenge_id
    account = account_activate(code=code, identifier="alice.nouvelle", password=PASSWORD)
    assert account.otp_destination == "new@example.org"
    with pytest.raises(LoginFailed):
        login_start(identifier=IDENTIFIER, password=PASSWORD)
    assert login_start(identifier="alice.nouvelle", password=PASSWORD).sent_to
    assert OutboxMessage.objects.filter(destination="new@example.org").exists()


def test_the_holder_logging_in_cancels_a_pending_reissue(personas):
    active_account(personas)
    code = account_initialise(
        caller=personas.ps(personas.nurse_robert),
        record=personas.alice.record,
        otp_channel="email",
        otp_destination="intruder@example.org",
    )
    step = login_start(identifier=IDENTIFIER, password=PASSWORD)
    login_verify(challenge_id=step.challenge_id, code=last_code())
    with pytest.raises(LoginFailed):
        account_activate(code=code, identifier="taken.over", password=PASSWORD)
    account = WebAccount.objects.get()
    assert (account.identifier, account.otp_destination) == (IDENTIFIER, "alice@example.org")


def test_unknown_identifiers_cost_the_same_hashing_work(personas, settings):
    """No enumeration by timing: an unknown identifier runs the password hasher as well."""
    import time

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    active_account(personas)

    def duration(identifier: str) -> float:
        started = time.perf_counter()
        with pytest.raises(LoginFailed):
            login_start(identifier=identifier, password="Wrong#Password-1")
        return time.perf_counter() - started

    unknown = sorted(duration("nobody.here") for _ in range(3))[1]
    known = sorted(duration(IDENTIFIER) for _ in range(3))[1]
    assert 0.33 < unknown / known < 3


def test_the_activation_code_command_acts_as_the_professional(personas):
    import io

    from django.core.management import CommandError, call_command

    out = io.StringIO()
    call_command(
        "patient_activation_code",
        ins=personas.alice.ins,
        professional=personas.dr_bernard.national_id,
        email="alice@example.org",
        stdout=out,
    )
    code = out.getvalue().strip()
    assert account_activate(code=code, identifier=IDENTIFIER, password=PASSWORD).status == "ACTIVE"
    with pytest.raises(CommandError):  # blocked professional
        call_command(
            "patient_activation_code",
            ins=personas.alice.ins,
            professional=personas.dr_durand.national_id,
            email="x@example.org",
            stdout=io.StringIO(),
        )


def test_probing_identifiers_with_an_activation_code_spends_the_address_budget(personas):
    """An activation code's holder learnt, without limit, which identifiers were taken."""
    active_account(personas)  # "alice.martin" is taken
    moreau = personas.ps(personas.dr_moreau)
    authorisation_self(caller=moreau, ins=personas.leo.identifier, grant=True)
    code = account_initialise(
        caller=moreau,
        record=personas.leo.record,
        otp_channel="email",
        otp_destination="leo@example.org",
    )
    for _ in range(ADDRESS_BUDGET):
        with pytest.raises(ValidationFailed):
            account_activate(code=code, identifier=IDENTIFIER, password=PASSWORD, client_address="192.0.2.7")
    with pytest.raises(Throttled):
        account_activate(code=code, identifier="leo.libre", password=PASSWORD, client_address="192.0.2.7")


def test_a_reissue_can_revoke_an_access_someone_else_holds(personas):
    """The holder, in front of the PS, reports that someone else uses their access: that person's
    login would cancel a plain re-issue, so the PS revokes the current access at once."""
    active_account(personas)
    code = account_initialise(
        caller=personas.ps(personas.dr_bernard),
        record=personas.alice.record,
        otp_channel="email",
        otp_destination="alice.new@example.org",
        revoke_current=True,
    )
    with pytest.raises(LoginFailed):
        login_start(identifier=IDENTIFIER, password=PASSWORD)
    notice = OutboxMessage.objects.filter(destination="alice@example.org").order_by("-pk").first()
    assert notice is not None
    assert "révoqué" in notice.subject
    account = account_activate(code=code, identifier="alice.reprise", password=PASSWORD)
    assert account.otp_destination == "alice.new@example.org"
