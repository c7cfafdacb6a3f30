"""Patient web accounts: hand-over by a PS, activation, password + one-time code login (TD1.5).

Security rules:
* the activation code (handed over by the PS) and the login one-time codes are random,
  stored as HMAC-SHA256 under the project secret, expiring and single use;
* every failure answers the same `LoginFailed` whatever the cause (unknown identifier,
  wrong password, locked account), after the same password-hashing work;
* `MAX_FAILURES` wrong passwords, or wrong one-time codes, lock the account for
  `LOCK_SECONDS`; a client address (an IPv6 /64) has a failure budget too (`ADDRESS_BUDGET`);
* every success and failure is written to the audit trail.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F
from django.utils.translation import gettext as _

from dmp.access.actors import Actor, ActorKind, AuthenticationMode, Caller, Channel
from dmp.access.policy import Action
from dmp.accounts import totp
from dmp.accounts.gateway import MessageGateway, default_gateway
from dmp.accounts.models import LoginChallenge, OtpChannel, WebAccount
from dmp.accounts.passwords import password_problems
from dmp.audit.actions import AuditAction, Outcome
from dmp.audit.models import AuditEvent, PendingNotice
from dmp.audit.services import Subject, audit_denial, audit_record
from dmp.common import clock
from dmp.common.addresses import budget_key
from dmp.common.errors import DomainError, ErrorCode, NotFound, Problem, ValidationFailed
from dmp.identity.actors import patient_actor, representative_actor
from dmp.identity.models import LegalRepresentative
from dmp.records.access import access_loaded_record, is_minor, record_subject
from dmp.records.models import Record
from dmp.records.selectors import traces_visible_to
from dmp.records.services import record_mark_web_account

ACTIVATION_DAYS = 14
OTP_SECONDS = 5 * 60
MAX_FAILURES = 5
LOCK_SECONDS = 30 * 60
ADDRESS_BUDGET = 30  # failures per client address per LOCK_SECONDS
_ACTIVATION_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
_IDENTIFIER_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{5,63}$")
# Hashing work done for an unknown identifier, so that it costs what a real check costs.
_DUMMY_PASSWORD = "opendmp-timing-equaliser"  # noqa: S105 - not a credential

logger = logging.getLogger(__name__)


class LoginFailed(DomainError):
    """One answer for every login or activation failure: nothing tells which part was wrong."""

    code = ErrorCode.NOT_FOUND


class Throttled(DomainError):
    """Too many failures from one client address."""

    code = ErrorCode.FORBIDDEN


def _keyed_hash(purpose: str, value: str) -> str:
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()


def _anonymous_caller(label: str = "anonymous") -> Caller:
    actor = Actor(
        kind=ActorKind.PATIENT,
        person_id=label,
        authentication=AuthenticationMode.PATIENT_PASSWORD_OTP,
    )
    return Caller(actor=actor, channel=Channel.PATIENT_PORTAL)


def caller_for(account: WebAccount, *, secret_connection: bool = False) -> Caller:
    """The Caller a logged-in account acts as (the holder, or the minor's legal representative)."""
    if account.representative is not None:
        actor = representative_actor(account.representative)
    else:
        actor = patient_actor(account.record.patient)
        # A minor's "connexion secrète": what they add is hidden from their legal representatives.
        if secret_connection and is_minor(account.record):
            actor = dataclasses.replace(actor, secret_connection=True)
    return Caller(actor=actor, channel=Channel.PATIENT_PORTAL)


def _subject(account: WebAccount) -> Subject:
    return record_subject(account.record)


def masked_destination(account: WebAccount) -> str:
    value = account.otp_destination
    if account.otp_channel == OtpChannel.EMAIL and "@" in value:
        name, _, domain = value.partition("@")
        return f"{name[:1]}•••@{domain}"
    return f"•••{value[-2:]}" if len(value) > 2 else "•••"


# --- hand-over by a professional ------------------------------------------------------------


def _new_activation_code() -> str:
    raw = "".join(secrets.choice(_ACTIVATION_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def _normalise_activation_code(code: str) -> str:
    raw = "".join(c for c in code.upper() if c.isalnum())
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def _fresh_second_factor(account: WebAccount, channel: str, destination: str) -> None:
    """`account` (unsaved) with its one-time codes sent to `destination`, no authenticator
    application, no failure counted, and the codes already sent spent."""
    account.otp_channel, account.otp_destination = channel, destination
    account.totp_enabled, account.totp_secret = False, ""
    account.failed_password_count = account.failed_otp_count = 0
    account.locked_until = None
    LoginChallenge.objects.filter(account=account, used_at__isnull=True).update(used_at=clock.now())


def _tell_holder(account: WebAccount, gateway: MessageGateway | None, subject: str, body: str) -> None:
    """A message to the account's current one-time-code destination."""
    (gateway or default_gateway()).send(
        channel=account.otp_channel, destination=account.otp_destination, subject=subject, body=body
    )


# Where one-time codes go by SMS: a French mobile number, or an international one (E.164).
_MOBILE_RE: Final = re.compile(r"0[67]\d{8}|\+[1-9]\d{7,14}")
_PHONE_SEPARATORS: Final = re.compile(r"[\s.\-()]")


def otp_destination_checked(channel: str, destination: str) -> str | None:
    """The destination of one-time codes as stored (a mobile number without separators), or None
    when it cannot receive them on `channel`: codes sent nowhere lock the holder out."""
    if channel == OtpChannel.EMAIL:
        try:
            validate_email(destination)
        except DjangoValidationError:
            return None
        return destination
    number = _PHONE_SEPARATORS.sub("", destination)
    return number if _MOBILE_RE.fullmatch(number) else None


def account_initialise(
    *,
    caller: Caller,
    record: Record,
    representative: LegalRepresentative | None = None,
    otp_channel: str = "",
    otp_destination: str = "",
    gateway: MessageGateway | None = None,
    revoke_current: bool = False,
) -> str:
    """TD1.5a: open (or re-issue) the web account of the holder or of a minor's legal representative.

    Returns the activation code the professional hands over; only its hash is kept. An active
    account keeps working until the new code is activated (and a login with it cancels the
    re-issue), unless `revoke_current`: the holder, in front of the professional, reports that
    someone else holds their access, which ends at once.
    """
    access_loaded_record(
        caller,
        record=record,
        action=Action.WEB_ACCOUNT_CREATE,
        audit_action=AuditAction.WEB_ACCOUNT_CREATE,
        for_write=True,
    )
    problems = []
    if representative is not None:
        if representative.patient_id != record.patient_id:
            raise NotFound("no such legal representative")
        if not is_minor(record):
            problems.append(
                Problem(ErrorCode.INVALID, "legal representatives act only for minors", "representative")
            )
    person = representative if representative is not None else record.patient
    if not otp_channel:  # the destination given tells its channel, else the holder's contact
        given = otp_destination.strip()
        otp_channel = OtpChannel.EMAIL if ("@" in given if given else person.email) else OtpChannel.SMS
    if otp_channel not in OtpChannel.values:
        problems.append(Problem(ErrorCode.INVALID, "unknown one-time code channel", "otp_channel"))
    destination = otp_destination.strip() or (
        person.email if otp_channel == OtpChannel.EMAIL else person.mobile_phone
    )
    if not destination:
        problems.append(
            Problem(ErrorCode.INVALID, "an e-mail address or a mobile number is required", "otp_destination")
        )
    elif otp_channel in OtpChannel.values:
        checked = otp_destination_checked(otp_channel, destination)
        if checked is None:
            problems.append(
                Problem(
                    ErrorCode.INVALID,
                    "not an e-mail address" if otp_channel == OtpChannel.EMAIL else "not a mobile number",
                    "otp_destination",
                )
            )
        destination = checked or destination
    if problems:
        raise ValidationFailed(problems)
    code = _new_activation_code()
    holder_key = f"rl:{representative.public_id}" if representative is not None else f"holder:{record.pk}"
    with transaction.atomic(durable=True):
        record_mark_web_account(record)
        account, _created = WebAccount.objects.select_for_update().get_or_create(
            holder_key=holder_key,
            defaults={"record": record, "representative": representative, "created_by_id": ""},
        )
        account.activation_code_hash = _keyed_hash("activation", code)
        account.activation_expires_at = clock.now() + dt.timedelta(days=ACTIVATION_DAYS)
        account.created_by_id = caller.actor.person_id
        reissue = account.status == WebAccount.Status.ACTIVE
        told = f"Le {clock.now():%d/%m/%Y à %H:%M}, {caller.actor.display_name} a "
        if reissue and not revoke_current:
            # The holder may be the one who lost access, or a professional may be taking it
            # over: the current credentials keep working and the holder is told; logging in
            # with them cancels the re-issue (whoever can log in needs no new code).
            account.pending_otp_channel = otp_channel
            account.pending_otp_destination = destination
            _tell_holder(
                account,
                gateway,
                "DMP : un nouvel accès à votre dossier a été demandé",
                told + "demandé un nouveau code d'activation de votre accès au DMP. Votre accès actuel "
                "reste valable jusqu'à l'activation du nouveau code.\nSi vous n'êtes pas à l'origine de "
                "cette demande, connectez-vous à votre DMP : la demande sera annulée.",
            )
        else:
            if reissue:  # revoked: the holder reported that someone else uses the access
                _tell_holder(
                    account,
                    gateway,
                    "DMP : votre accès a été révoqué",
                    told + "révoqué votre accès au DMP et remis un nouveau code d'activation, à la "
                    "demande du titulaire.",
                )
            account.status = WebAccount.Status.PENDING
            account.identifier = None
            account.password = ""
            account.pending_otp_channel = account.pending_otp_destination = ""
            _fresh_second_factor(account, otp_channel, destination)
        account.save()
        audit_record(
            caller=caller,
            action=AuditAction.WEB_ACCOUNT_CREATE,
            subject=record_subject(record),
            details={
                "account": str(account.public_id),
                "representative": representative is not None,
                **({"reissue": True} if reissue else {}),
                **({"revoked": True} if reissue and revoke_current else {}),
            },
        )
    return code


# --- activation -------------------------------------------------------------------------------


def _address_key(address: str) -> str:
    return f"patient-auth:addr:{budget_key(address)}"


def _check_address_budget(address: str) -> None:
    if int(cache.get(_address_key(address), 0)) >= ADDRESS_BUDGET:
        raise Throttled("too many attempts from this address")


def _spend_address_budget(address: str) -> None:
    key = _address_key(address)
    cache.add(key, 0, timeout=LOCK_SECONDS)
    try:
        cache.incr(key)
    except ValueError:
        cache.set(key, 1, timeout=LOCK_SECONDS)


def account_activate(*, code: str, identifier: str, password: str, client_address: str = "") -> WebAccount:
    """TD1.5: the patient activates the account with the handed-over code and chooses credentials."""
    _check_address_budget(client_address)
    now = clock.now()
    account = (
        WebAccount.objects.select_related("record__patient", "representative")
        .filter(activation_code_hash=_keyed_hash("activation", _normalise_activation_code(code)))
        .first()
    )
    if (
        account is None
        or account.status == WebAccount.Status.CLOSED
        or account.activation_expires_at is None
        or account.activation_expires_at <= now
    ):
        _spend_address_budget(client_address)
        audit_denial(
            caller=_anonymous_caller(),
            action=AuditAction.WEB_ACCOUNT_CREATE,
            subject=_subject(account) if account is not None else Subject(),
            reason="activation_code_invalid",
        )
        raise LoginFailed("invalid or expired activation code")
    identifier = identifier.strip().lower()
    problems = []
    if not _IDENTIFIER_RE.match(identifier):
        problems.append(
            Problem(
                ErrorCode.INVALID,
                _("L'identifiant doit compter de 6 à 64 caractères : lettres minuscules, chiffres, . _ -"),
                "identifier",
            )
        )
    elif WebAccount.objects.filter(identifier=identifier).exclude(pk=account.pk).exists():
        # The answer tells that the identifier is someone's: it costs like a failed login, or a
        # code's holder could list the identifiers of the country (and lock them out).
        _spend_address_budget(client_address)
        problems.append(Problem(ErrorCode.CONFLICT, _("Cet identifiant n'est pas disponible."), "identifier"))
    problems += [
        Problem(ErrorCode.INVALID, message, "password")
        for message in password_problems(password, identifier=identifier)
    ]
    if problems:
        raise ValidationFailed(problems)
    with transaction.atomic(durable=True):
        locked = WebAccount.objects.select_for_update().get(pk=account.pk)
        if locked.activation_code_hash != account.activation_code_hash:
            raise LoginFailed("invalid or expired activation code")
        locked.identifier = identifier
        locked.password = make_password(password)
        if locked.status == WebAccount.Status.ACTIVE:  # a re-issue: the new holder's channel
            _fresh_second_factor(
                locked,
                locked.pending_otp_channel or locked.otp_channel,
                locked.pending_otp_destination or locked.otp_destination,
            )
        locked.pending_otp_channel = locked.pending_otp_destination = ""
        locked.status = WebAccount.Status.ACTIVE
        locked.activation_code_hash = ""
        locked.activation_expires_at = None
        locked.activated_at = now
        locked.save()
        audit_record(
            caller=caller_for(account),
            action=AuditAction.WEB_ACCOUNT_CREATE,
            subject=_subject(account),
            details={"activated": True},
        )
    return locked


# --- login --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginStep:
    """The first factor was accepted: the challenge to answer and where its code was sent."""

    challenge_id: str
    uses_totp: bool
    sent_to: str


def _is_locked(account: WebAccount, now: dt.datetime) -> bool:
    return account.locked_until is not None and account.locked_until > now


def _register_failure(account: WebAccount, *, field: str, reason: str, now: dt.datetime) -> None:
    """Count one failure on the account (locking it at MAX_FAILURES) and audit it."""
    with transaction.atomic():
        locked = WebAccount.objects.select_for_update().get(pk=account.pk)
        count = getattr(locked, field) + 1
        setattr(locked, field, count)
        updates = [field]
        if count >= MAX_FAILURES:
            locked.locked_until = now + dt.timedelta(seconds=LOCK_SECONDS)
            setattr(locked, field, 0)
            updates.append("locked_until")
            LoginChallenge.objects.filter(account=locked, used_at__isnull=True).update(used_at=now)
        locked.save(update_fields=updates)
        audit_record(
            caller=caller_for(account),
            action=AuditAction.AUTHENTICATION_FAILURE,
            subject=_subject(account),
            outcome=Outcome.DENIED,
            reason=reason,
            details={"locked": "locked_until" in updates},
        )


def login_start(
    *,
    identifier: str,
    password: str,
    client_address: str = "",
    gateway: MessageGateway | None = None,
) -> LoginStep:
    """First factor: identifier + password. Sends a one-time code (unless a TOTP app is enrolled)."""
    _check_address_budget(client_address)
    now = clock.now()
    identifier = identifier.strip().lower()[:64]
    account = (
        WebAccount.objects.select_related("record__patient", "representative")
        .filter(identifier=identifier, status=WebAccount.Status.ACTIVE)
        .first()
        if identifier
        else None
    )
    if account is None:
        make_password(password or _DUMMY_PASSWORD)  # same hashing cost as a real check
        _spend_address_budget(client_address)
        audit_denial(
            caller=_anonymous_caller(),
            action=AuditAction.AUTHENTICATION_FAILURE,
            reason="unknown_identifier",
            details={"identifier_hash": _keyed_hash("identifier", identifier)[:16]},
        )
        raise LoginFailed("login failed")
    password_ok = check_password(password, account.password)
    if _is_locked(account, now) or not password_ok:
        _spend_address_budget(client_address)
        if _is_locked(account, now):
            audit_denial(
                caller=caller_for(account),
                action=AuditAction.AUTHENTICATION_FAILURE,
                subject=_subject(account),
                reason="account_locked",
            )
        else:
            _register_failure(account, field="failed_password_count", reason="bad_password", now=now)
        raise LoginFailed("login failed")
    uses_totp = account.totp_enabled and bool(account.totp_secret)
    code = f"{secrets.randbelow(10**6):06d}"
    with transaction.atomic(durable=True):
        WebAccount.objects.filter(pk=account.pk).update(failed_password_count=0)
        LoginChallenge.objects.filter(account=account, used_at__isnull=True).update(used_at=now)
        challenge = LoginChallenge.objects.create(
            account=account,
            uses_totp=uses_totp,
            created_at=now,
            expires_at=now + dt.timedelta(seconds=OTP_SECONDS),
        )
        if not uses_totp:
            challenge.code_hash = _keyed_hash(f"otp:{challenge.public_id}", code)
            challenge.save(update_fields=["code_hash"])
            (gateway or default_gateway()).send(
                channel=account.otp_channel,
                destination=account.otp_destination,
                subject="DMP : votre code de connexion",
                body=(
                    f"Votre code de connexion au DMP est {code}. Il est valable 5 minutes.\n"
                    "Si vous n'êtes pas à l'origine de cette demande, changez votre mot de passe."
                ),
            )
    return LoginStep(
        challenge_id=str(challenge.public_id),
        uses_totp=uses_totp,
        sent_to="" if uses_totp else masked_destination(account),
    )


def login_verify(*, challenge_id: str, code: str, client_address: str = "") -> WebAccount:
    """Second factor: the one-time code (or the TOTP). Single use, 5 minutes, MAX_FAILURES tries."""
    _check_address_budget(client_address)
    now = clock.now()
    challenge = (
        LoginChallenge.objects.select_related("account__record__patient", "account__representative")
        .filter(public_id=challenge_id)
        .first()
        if _is_uuid(challenge_id)
        else None
    )
    if challenge is None or challenge.used_at is not None or challenge.expires_at <= now:
        _spend_address_budget(client_address)
        audit_denial(
            caller=_anonymous_caller() if challenge is None else caller_for(challenge.account),
            action=AuditAction.AUTHENTICATION_FAILURE,
            subject=Subject() if challenge is None else _subject(challenge.account),
            reason="otp_challenge_invalid",
        )
        raise LoginFailed("login failed")
    account = challenge.account
    if _is_locked(account, now) or account.status != WebAccount.Status.ACTIVE:
        audit_denial(
            caller=caller_for(account),
            action=AuditAction.AUTHENTICATION_FAILURE,
            subject=_subject(account),
            reason="account_locked",
        )
        raise LoginFailed("login failed")
    code = code.strip()
    totp_step: int | None = None
    if challenge.uses_totp:
        last_step = int(cache.get(f"patient-auth:totp-step:{account.pk}", -1))
        totp_step = totp.totp_verify(
            _unseal(account.totp_secret, account), code, now.timestamp(), after_step=last_step
        )
        good = totp_step is not None
    else:
        expected = _keyed_hash(f"otp:{challenge.public_id}", code)
        good = len(code) == 6 and hmac.compare_digest(expected, challenge.code_hash)
    if not good:
        _spend_address_budget(client_address)
        LoginChallenge.objects.filter(pk=challenge.pk).update(attempts=F("attempts") + 1)
        _register_failure(account, field="failed_otp_count", reason="bad_otp", now=now)
        raise LoginFailed("login failed")
    with transaction.atomic(durable=True):
        # Failures are counted under this row's lock: parallel guesses that all passed the check
        # above are refused once the failures they queued behind have locked the account.
        current = WebAccount.objects.select_for_update().get(pk=account.pk)
        if _is_locked(current, now) or current.status != WebAccount.Status.ACTIVE:
            raise LoginFailed("login failed")
        # Single use, even under concurrent submissions of the same code.
        used = LoginChallenge.objects.filter(
            pk=challenge.pk, used_at__isnull=True, attempts__lt=MAX_FAILURES
        ).update(used_at=now)
        if used != 1:
            raise LoginFailed("login failed")
        # A pending re-issue is cancelled: who can log in with the current credentials needs no
        # new code, and a professional taking the account over loses the one they hold.
        cancelled = bool(current.activation_code_hash)
        WebAccount.objects.filter(pk=account.pk).update(
            failed_otp_count=0,
            failed_password_count=0,
            last_login_at=now,
            activation_code_hash="",
            activation_expires_at=None,
            pending_otp_channel="",
            pending_otp_destination="",
        )
        audit_record(
            caller=caller_for(account),
            action=AuditAction.AUTHENTICATION_SUCCESS,
            subject=_subject(account),
            details={
                "second_factor": "totp" if challenge.uses_totp else account.otp_channel,
                **({"reissue_cancelled": True} if cancelled else {}),
            },
        )
    if totp_step is not None:
        cache.set(f"patient-auth:totp-step:{account.pk}", totp_step, timeout=totp.STEP_SECONDS * 4)
    account.refresh_from_db()
    return account


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


def account_for_session(public_id: str) -> WebAccount | None:
    """The active, unlocked account a session names, or None (the session is then dropped)."""
    if not _is_uuid(public_id):
        return None
    return (
        WebAccount.objects.select_related("record__patient", "representative")
        .filter(public_id=public_id, status=WebAccount.Status.ACTIVE)
        .first()
    )


def session_token(account: WebAccount) -> str:
    """Changes when the password or the activation changes: older sessions stop working."""
    return _keyed_hash("session", f"{account.public_id}:{account.password}:{account.activated_at}")[:32]


# --- optional TOTP application ----------------------------------------------------------------


def _totp_key() -> bytes:
    master: bytes = settings.OPENDMP_MASTER_KEY
    return hmac.new(master, b"opendmp patient totp secrets v1", hashlib.sha256).digest()


def _seal(secret: str, account: WebAccount) -> str:
    """The TOTP secret encrypted (AES-256-GCM, bound to the account) for storage."""
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_totp_key()).encrypt(nonce, secret.encode(), str(account.public_id).encode())
    return base64.b64encode(nonce + sealed).decode()


def _unseal(stored: str, account: WebAccount) -> str:
    raw = base64.b64decode(stored)
    return AESGCM(_totp_key()).decrypt(raw[:12], raw[12:], str(account.public_id).encode()).decode()


def totp_enrol_start(*, account: WebAccount) -> str:
    """A new secret to show the patient (not active until confirmed with a first code)."""
    return totp.new_secret()


def _require_password(account: WebAccount, password: str) -> None:
    """The second factor changes only with the password: a session left open (or stolen) must not
    be enough to switch it to the taker's own application or back to codes it can read."""
    if not account_confirm_password(account=account, password=password):
        raise ValidationFailed([Problem(ErrorCode.INVALID, _("Mot de passe incorrect."), "password")])


def totp_enrol_confirm(*, account: WebAccount, secret: str, code: str, password: str) -> WebAccount:
    _require_password(account, password)
    now = clock.now()
    if totp.totp_verify(secret, code, now.timestamp()) is None:
        raise ValidationFailed([Problem(ErrorCode.INVALID, _("Code incorrect."), "code")])
    with transaction.atomic(durable=True):
        WebAccount.objects.filter(pk=account.pk).update(totp_secret=_seal(secret, account), totp_enabled=True)
        audit_record(
            caller=caller_for(account),
            action=AuditAction.RECORD_UPDATE_ADMIN,
            subject=_subject(account),
            details={"totp": "enabled"},
        )
    account.refresh_from_db()
    return account


def totp_disable(*, account: WebAccount, password: str) -> WebAccount:
    _require_password(account, password)
    with transaction.atomic(durable=True):
        WebAccount.objects.filter(pk=account.pk).update(totp_secret="", totp_enabled=False)
        audit_record(
            caller=caller_for(account),
            action=AuditAction.RECORD_UPDATE_ADMIN,
            subject=_subject(account),
            details={"totp": "disabled"},
        )
    account.refresh_from_db()
    return account


def account_confirm_password(*, account: WebAccount, password: str) -> bool:
    """Re-authentication before a grave action (closure, a change of the second factor); failures
    count towards the lock."""
    now = clock.now()
    if _is_locked(account, now) or not check_password(password, account.password):
        if not _is_locked(account, now):
            _register_failure(account, field="failed_password_count", reason="bad_password_confirm", now=now)
        return False
    return True


# --- notification of exceptional accesses (break-glass, Centre 15) ----------------------------


def exceptional_access_notify(*, gateway: MessageGateway | None = None, limit: int = 5000) -> int:
    """Tell account holders about the break-glass / Centre 15 accesses not yet notified.

    The audit trail is the source of truth: `audit_record` leaves a `PendingNotice` with each
    exceptional event, in its transaction, and this consumes them, so a run costs what is new,
    not the number of accounts, and an event committed after a later-numbered one is told all
    the same. Runs after each exceptional access (a Celery task, inline in the embedded default)
    and can be re-run safely (`manage.py patient_notify`): the notices are deleted in the
    transaction that sends them, and a concurrent run skips the rows this one holds.
    Each account's notice is sent on its own: one that fails (the gateway down, a bad address)
    is logged and its record's notices stay for the next run, the others go and are done (a
    co-holder of that record already told may be told again: delivery is at least once).
    A holder who turned notices off is not told later about accesses made meanwhile; the
    access history shows them.
    """
    gateway = gateway or default_gateway()
    sent = 0
    with transaction.atomic():
        pending = list(
            PendingNotice.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("event")
            .order_by("pk")[:limit]
        )
        if not pending:
            return 0
        by_record: dict[int, list[AuditEvent]] = {}
        for notice in sorted(pending, key=lambda n: n.event_id):
            by_record.setdefault(notice.event.record_id or 0, []).append(notice.event)
        accounts = WebAccount.objects.filter(
            record_id__in=list(by_record), status=WebAccount.Status.ACTIVE, notify_exceptional_access=True
        ).select_related("record__patient")
        failed_records: set[int] = set()
        for account in accounts:
            if account.representative_id is not None and not is_minor(account.record):
                continue  # a legal representative acts only while the patient is a minor
            # Only what this holder's history shows: an access to a document hidden from them
            # (awaiting its announcement, invisible to the parents, the minor's secret
            # connection) must not reach them by a notice either.
            fresh = list(
                traces_visible_to(
                    caller_for(account),
                    account.record,
                    AuditEvent.objects.filter(pk__in=[e.pk for e in by_record[account.record_id]]),
                ).order_by("pk")
            )
            if not fresh:
                continue
            who = sorted({f"{e.actor_name or e.actor_id} ({e.actor_structure_name})" for e in fresh})
            mode_words = {
                "bris_de_glace": "en urgence (bris de glace)",
                "centre_15": "par le SAMU - Centre 15",
            }
            modes = sorted({mode_words.get(e.access_mode, e.access_mode) for e in fresh})
            try:
                with transaction.atomic():  # a gateway that writes (the outbox) fails alone
                    gateway.send(
                        channel=account.otp_channel,
                        destination=account.otp_destination,
                        subject="DMP : accès exceptionnel à votre dossier",
                        body=(
                            f"Votre dossier a été consulté {', '.join(modes)} par : {', '.join(who)}.\n"
                            "Le détail (date, motif) figure dans l'historique des accès de votre espace DMP."
                        ),
                    )
                    WebAccount.objects.filter(pk=account.pk).update(
                        notified_until=max(e.occurred_at for e in fresh)
                    )
            except Exception:
                logger.exception("exceptional-access notice to account %s not sent, kept", account.public_id)
                failed_records.add(account.record_id)
                continue
            sent += 1
        PendingNotice.objects.filter(
            pk__in=[notice.pk for notice in pending if notice.event.record_id not in failed_records]
        ).delete()
    return sent


def account_notifications_set(*, account: WebAccount, enabled: bool) -> WebAccount:
    """The holder chooses whether exceptional accesses are notified through the code channel."""
    with transaction.atomic(durable=True):
        WebAccount.objects.filter(pk=account.pk).update(notify_exceptional_access=enabled)
        audit_record(
            caller=caller_for(account),
            action=AuditAction.RECORD_UPDATE_ADMIN,
            subject=_subject(account),
            details={"notify_exceptional_access": enabled},
        )
    account.refresh_from_db()
    return account
