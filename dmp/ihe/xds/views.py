"""The SOAP endpoint of DMP-compatible software: parse, authenticate (VIHF), dispatch, answer.

Security failures are SOAP faults (nothing about the record is revealed); business errors of
XDS transactions are RegistryResponses with IHE error codes; nothing changes on error because
every service is all-or-nothing.
"""

from __future__ import annotations

import logging
from typing import Final

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from lxml import etree

from dmp.access.actors import Caller
from dmp.common.errors import DomainError, ErrorCode, ValidationFailed
from dmp.common.middleware import declared_length
from dmp.compat.models import SoftwareProduct
from dmp.compat.services import SoftwareProfileMissing, software_profile_check
from dmp.ihe.xds import ebrim, soap
from dmp.ihe.xds.ebrim import RS, XDSB, RegistryError, q
from dmp.ihe.xds.transactions import HANDLERS, REGISTRY_STYLE, REPLY_ACTIONS, Action, Context
from dmp.ihe.xds.vihf import (
    VihfRejected,
    caller_from_vihf,
    tls_client_certificate,
    use_assertion,
    verify_assertion,
)

logger = logging.getLogger(__name__)

XDS_ERROR_CODES = {
    ErrorCode.DUPLICATE_UNIQUE_ID: "XDSDuplicateUniqueIdInRegistry",
    ErrorCode.NON_IDENTICAL_HASH: "XDSNonIdenticalHash",
    ErrorCode.NON_IDENTICAL_SIZE: "XDSNonIdenticalSize",
    ErrorCode.UNKNOWN_PATIENT: "XDSUnknownPatientId",
    ErrorCode.PATIENT_ID_MISMATCH: "XDSPatientIdDoesNotMatch",
    ErrorCode.UNRESOLVED_REFERENCE: "XDSUnresolvedReferenceException",
    ErrorCode.UNSUPPORTED: "XDSUnknownStoredQuery",
    ErrorCode.PARAM_NUMBER: "XDSStoredQueryParamNumber",
    ErrorCode.INVALID: "XDSRegistryMetadataError",
    ErrorCode.CONFLICT: "XDSMetadataVersionError",
    ErrorCode.INTEGRITY: "XDSRepositoryError",
    ErrorCode.DOCUMENT_TOO_LARGE: "XDSRepositoryError",
    ErrorCode.NOT_FOUND: "XDSRegistryError",
    ErrorCode.FORBIDDEN: "XDSRegistryError",
}


def _errors(exc: DomainError) -> list[RegistryError]:
    problems = exc.problems if isinstance(exc, ValidationFailed) else []
    if problems:
        return [
            RegistryError(XDS_ERROR_CODES.get(p.code, "XDSRegistryError"), p.message, p.location)
            for p in problems
        ]
    return [RegistryError(XDS_ERROR_CODES.get(exc.code, "XDSRegistryError"), exc.message, exc.location)]


def _respond(
    root: etree._Element,
    action: str,
    attachments: dict[str, bytes] | None,
    status: int = 200,
    splices: dict[str, bytes] | None = None,
) -> HttpResponse:
    content_type, data = soap.encode(root, action, attachments, splices)
    return HttpResponse(data, status=status, content_type=content_type)


def _fault(reason: str, *, code: str = "Sender", subcode: str = "", relates_to: str = "") -> HttpResponse:
    root = soap.fault(code, reason, subcode=subcode, relates_to=relates_to)
    return _respond(
        root, "http://www.w3.org/2005/08/addressing/soap/fault", None, 400 if code == "Sender" else 500
    )


def _error_body(action: str, exc: DomainError) -> etree._Element:
    errors = _errors(exc)
    if action == Action.RETRIEVE:
        response = etree.Element(q(XDSB, "RetrieveDocumentSetResponse"), nsmap={"xdsb": XDSB, "rs": RS})
        registry = etree.SubElement(response, q(RS, "RegistryResponse"), status=ebrim.RESPONSE_FAILURE)
        ebrim.registry_error_list(registry, errors)
        return response
    if action == Action.STORED_QUERY:
        response = etree.Element(
            q(ebrim.QUERY, "AdhocQueryResponse"),
            nsmap={"query": ebrim.QUERY, "rs": RS},
            status=ebrim.RESPONSE_FAILURE,
        )
        ebrim.registry_error_list(response, errors)
        return response
    return ebrim.registry_response(errors)


# The homologation profile each transaction needs; the others (TD0.x: existence and rights,
# authorisations, the PS's own traces, the contextual link) belong to every profile.
Profile = SoftwareProduct.Profile
TRANSACTION_PROFILES: Final = {
    Action.PROVIDE_AND_REGISTER: Profile.FEEDING,
    Action.UPDATE: Profile.FEEDING,
    Action.STORED_QUERY: Profile.CONSULTATION,
    Action.RETRIEVE: Profile.CONSULTATION,
    Action.RECORD_CREATE: Profile.CREATION,
    Action.RECORD_REACTIVATE: Profile.CREATION,
    Action.RECORD_CLOSE: Profile.CREATION,
    Action.ADMIN_UPDATE: Profile.CREATION,
    Action.WEB_ACCOUNT: Profile.CREATION,
}


@csrf_exempt
@require_POST
def endpoint(request: HttpRequest) -> HttpResponse:
    limit = settings.OPENDMP_XDS_MAX_REQUEST_BYTES
    if declared_length(request) > limit:
        return _fault(f"request larger than {limit} bytes")
    body = request.read(limit + 1)
    if len(body) > limit:
        return _fault(f"request larger than {limit} bytes")
    try:
        message = soap.parse_message(request.META.get("CONTENT_TYPE", ""), body)
    except ValidationFailed as exc:
        return _fault(exc.problems[0].message if exc.problems else "malformed message")
    if message.action not in HANDLERS:
        return _fault(f"unsupported action {message.action!r}", subcode="wsa:ActionNotSupported")
    try:
        facts = verify_assertion(message.header_element(soap.WSSE, "Security"))
        caller = caller_from_vihf(
            facts,
            client_certificate=tls_client_certificate(request),
            pending_use=message.action in READS,
        )
    except VihfRejected as exc:
        return _rejected(message, exc)
    try:
        response = _answer(message, Context(message=message, caller=caller, patient=facts.patient))
        use_assertion(caller)  # before anything is answered, if no audit event used it
    except VihfRejected as exc:  # a replay, found where the assertion was used
        return _rejected(message, exc)
    except BaseException:
        _use_after_failure(caller)
        raise
    return response


# Transactions that only read (and trace the reading): their assertion is used by their first
# audit event, in its commit (ADR 0016). A write uses it before it starts, since it commits
# its changes (and writes its documents' bytes) before any answer.
READS: Final = frozenset({Action.STORED_QUERY, Action.RETRIEVE})


def _rejected(message: soap.SoapMessage, exc: VihfRejected) -> HttpResponse:
    logger.warning("VIHF rejected on %s: %s", message.action, exc.message)
    return _fault(exc.message, subcode="wsse:FailedAuthentication", relates_to=message.message_id)


def _use_after_failure(caller: Caller) -> None:
    """A request that failed still used its assertion: a replay must not get what it did not.
    The event that used it may have been undone with the failure, or not; either is fine."""
    use = caller.credential_use
    if use is None:
        return
    use.written = False
    try:
        use.write()
    except Exception:  # already used, or the database is down: the failure goes on
        logger.debug("the failed request's assertion could not be (or was already) used", exc_info=True)


def _answer(message: soap.SoapMessage, context: Context) -> HttpResponse:
    """The handler's answer: its outcome, or its error as the transaction's response or a fault.
    A replayed assertion (VihfRejected) is the endpoint's to answer."""
    caller = context.caller
    reply_action = REPLY_ACTIONS.get(message.action, f"{message.action}Response")
    profile = TRANSACTION_PROFILES.get(message.action)
    try:
        if profile is not None:
            software_profile_check(caller.actor.software, profile)
    except SoftwareProfileMissing as exc:
        logger.warning("%s refused to %s: %s", message.action, caller.actor.software, exc.message)
        return _fault(exc.message, subcode=f"dmp:{exc.code.value}", relates_to=message.message_id)
    try:
        outcome = HANDLERS[message.action](context)
    except VihfRejected:
        raise
    except DomainError as exc:
        if message.action in REGISTRY_STYLE or message.action == Action.RETRIEVE:
            root = soap.envelope(
                reply_action, _error_body(message.action, exc), relates_to=message.message_id
            )
            return _respond(root, reply_action, None)
        return _fault(exc.message, subcode=f"dmp:{exc.code.value}", relates_to=message.message_id)
    root = soap.envelope(reply_action, outcome.body, relates_to=message.message_id)
    return _respond(
        root, reply_action, outcome.attachments if message.mtom else None, splices=outcome.splices
    )
