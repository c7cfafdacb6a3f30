"""A client for the DMP's SOAP web services (XDS.b with the DMP profile, and DMP transactions).

Every call carries a freshly signed VIHF (new assertion id, short validity). Documents travel
as MTOM attachments by default, inline base64 on request. Used by OpenDMP's own end-to-end
tests over real HTTP, and by vendors as a reference implementation.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import threading
import urllib.parse
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypedDict, Unpack

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from lxml import etree

from dmp.common.xml import parse_xml
from dmp.documents.metadata import SubmissionInput
from dmp.identity.ins import Ins, parse_hl7_ins
from dmp.ihe.xds import dsg, ebrim, hl7v3, soap
from dmp.ihe.xds.ebrim import LCM, QUERY, RIM, RS, XDSB, XOP, RegistryError, q
from opendmp_client.vihf import VihfClaims, signed_vihf

DMP_NS = "urn:opendmp:dmp:1"
PROVIDE_AND_REGISTER = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
STORED_QUERY = "urn:ihe:iti:2007:RegistryStoredQuery"
RETRIEVE = "urn:ihe:iti:2007:RetrieveDocumentSet"


class SoapFault(Exception):
    def __init__(self, status: int, reason: str, subcode: str) -> None:
        super().__init__(f"SOAP fault ({status}, {subcode}): {reason}")
        self.status = status
        self.reason = reason
        self.subcode = subcode


@dataclass
class SoapResponse:
    status: int
    body: etree._Element
    attachments: dict[str, bytes] = field(default_factory=dict)
    mtom: bool = False

    @property
    def errors(self) -> list[RegistryError]:
        return ebrim.read_registry_errors(self.body)

    @property
    def registry_status(self) -> str:
        registry = (
            self.body
            if self.body.tag == q(RS, "RegistryResponse")
            else self.body.find(q(RS, "RegistryResponse"))
        )
        return (registry if registry is not None else self.body).get("status", "")

    @property
    def ok(self) -> bool:
        return self.registry_status == ebrim.RESPONSE_SUCCESS


@dataclass(frozen=True)
class RetrievedDocument:
    unique_id: str
    repository_unique_id: str
    mime_type: str
    content: bytes


class _Connections:
    """One HTTP connection per thread, kept open between calls: a TLS handshake with a client
    certificate (mutual TLS) costs more than most calls themselves."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[http.client.HTTPConnection] = []

    def get(self, open_one: Callable[[], http.client.HTTPConnection]) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = open_one()
            with self._lock:
                self._opened.append(connection)
        return connection

    def close(self) -> None:
        """Closes every thread's connection; each opens another on its next call."""
        with self._lock:
            opened, self._opened, self._local = self._opened, [], threading.local()
        for connection in opened:
            connection.close()


class RequestOptions(TypedDict, total=False):
    """How `XdsClient.prepare` builds a request besides its action and body."""

    attachments: Mapping[str, bytes] | None  # content id -> bytes, sent as MTOM parts
    mtom: bool  # MTOM even without attachments
    claims: VihfClaims | None  # instead of the client's own (another patient, break-glass...)
    security: etree._Element | None  # a ready-made VIHF instead of a freshly signed one


@dataclass
class XdsClient:
    endpoint: str
    claims: VihfClaims
    key: RSAPrivateKey
    certificate: x509.Certificate
    ssl_context: ssl.SSLContext | None = None
    timeout: float = 30.0
    # Sent with every request (e.g. the client certificate a TLS-terminating proxy forwards).
    extra_headers: dict[str, str] = field(default_factory=dict)
    _connections: _Connections = field(default_factory=_Connections, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A client dropped without close() closes its sockets (no ResourceWarning, no leak).
        weakref.finalize(self, self._connections.close)

    # -- transport -------------------------------------------------------------------------

    def call(self, action: str, body: etree._Element, **options: Unpack[RequestOptions]) -> SoapResponse:
        return self.send(*self.prepare(action, body, **options))

    def prepare(
        self,
        action: str,
        body: etree._Element,
        *,
        attachments: Mapping[str, bytes] | None = None,
        mtom: bool = False,
        claims: VihfClaims | None = None,
        security: etree._Element | None = None,
    ) -> tuple[str, bytes]:
        """(Content-Type, bytes) of the signed request `call` would send; `send` sends it.

        A prepared request can be sent once: its VIHF's assertion id is then spent."""
        assertion = security if security is not None else self.vihf(claims)
        root = soap.envelope(action, body, to=self.endpoint, security=assertion)
        if mtom and not attachments:
            return soap.encode(root, action, {"empty@opendmp": b""})
        return soap.encode(root, action, dict(attachments or {}))

    def vihf(self, claims: VihfClaims | None = None) -> etree._Element:
        return signed_vihf(claims or self.claims, key=self.key, certificate=self.certificate)

    def send(self, content_type: str, data: bytes) -> SoapResponse:
        return self.read_answer(*self.exchange(content_type, data))

    def read_answer(self, status: int, reply_type: str, payload: bytes) -> SoapResponse:
        """An answer `exchange` gave, parsed as `send` does: a SOAP fault raises `SoapFault`."""
        try:
            message = soap.parse_message(reply_type, payload)
        except soap.SoapError:
            if status >= 400:  # a proxy's or server's error page: say so, not "bad content type"
                raise SoapFault(status, f"HTTP {status} without a SOAP answer ({reply_type})", "") from None
            raise
        if message.body.tag == f"{{{soap.SOAP12}}}Fault":
            reason = message.body.findtext(f".//{{{soap.SOAP12}}}Text") or ""
            subcode = (
                message.body.findtext(
                    f"{{{soap.SOAP12}}}Code/{{{soap.SOAP12}}}Subcode/{{{soap.SOAP12}}}Value"
                )
                or ""
            )
            raise SoapFault(status, reason, subcode)
        return SoapResponse(
            status=status, body=message.body, attachments=message.attachments, mtom=message.mtom
        )

    def exchange(self, content_type: str, data: bytes) -> tuple[int, str, bytes]:
        """A prepared call sent as it is, and its answer as received: (status, Content-Type,
        bytes), over this thread's kept-alive connection. Unparsed, for who keeps the raw
        traffic (a trace, a support ticket) or reads little of it (a load generator); `send`
        parses it.

        A reused connection the server has closed meanwhile (its keep-alive timeout) fails
        before any answer: the call is sent once more on a new connection. Never twice
        processed: had the first reached the application, its VIHF's assertion id would be
        spent and the second refused as a replay."""
        target = urllib.parse.urlsplit(self.endpoint)
        path = (target.path or "/") + (f"?{target.query}" if target.query else "")
        headers = {**self.extra_headers, "Content-Type": content_type}
        for retry in (False, True):
            connection = self._connection(target)
            reused = connection.sock is not None
            try:
                connection.request("POST", path, body=data, headers=headers)
                reply = connection.getresponse()
                payload = reply.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                connection.close()
                if reused and not retry:
                    continue
                raise
            except BaseException:
                connection.close()  # a half-read answer must not be read as the next one
                raise
            return reply.status, reply.getheader("Content-Type", ""), payload
        raise AssertionError("unreachable")  # pragma: no cover - the second try returns or raises

    def _connection(self, target: urllib.parse.SplitResult) -> http.client.HTTPConnection:
        host, port = target.hostname or "", target.port

        def open_one() -> http.client.HTTPConnection:
            if target.scheme == "https":
                return http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self.ssl_context)
            return http.client.HTTPConnection(host, port, timeout=self.timeout)

        return self._connections.get(open_one)

    def close(self) -> None:
        """Closes the client's connections (a later call opens another)."""
        self._connections.close()

    # -- XDS.b -----------------------------------------------------------------------------

    def provide_and_register(
        self,
        submission: SubmissionInput,
        *,
        mtom: bool = True,
        claims: VihfClaims | None = None,
        sign_lot: bool = True,
    ) -> SoapResponse:
        """ITI-41; the lot is signed (XAdES, as the DMP requires) with this client's key unless
        `sign_lot` is false or `submission` already carries its signature document."""
        if sign_lot and not any(dsg.is_signature(d) for d in submission.documents):
            submission = dsg.signed_submission(submission, key=self.key, certificate=self.certificate)
        body, attachments = ebrim.provide_and_register_request(submission, mtom=mtom)
        return self.call(PROVIDE_AND_REGISTER, body, attachments=attachments, claims=claims)

    def stored_query(
        self,
        query_id: str,
        params: Mapping[str, str | Sequence[str]],
        *,
        return_type: str = "LeafClass",
        claims: VihfClaims | None = None,
    ) -> SoapResponse:
        return self.call(STORED_QUERY, stored_query_request(query_id, params, return_type), claims=claims)

    def retrieve(
        self,
        requests: Sequence[tuple[str, str]],
        *,
        mtom: bool = True,
        claims: VihfClaims | None = None,
    ) -> tuple[SoapResponse, list[RetrievedDocument]]:
        """[(repositoryUniqueId, documentUniqueId)] -> the response and the documents it carries."""
        response = self.call(RETRIEVE, retrieve_request(requests), mtom=mtom, claims=claims)
        return response, read_retrieved(response)

    def update_document(
        self,
        entry: etree._Element,
        *,
        confidentiality: Sequence[tuple[str, str]],
        claims: VihfClaims | None = None,
    ) -> SoapResponse:
        """ITI-57: a new metadata version of `entry` (from a query) with these confidentiality codes."""
        return self.update(entries=[(entry, confidentiality)], claims=claims)

    def update_status(
        self, entry_uuid: str, original: str, new: str, *, claims: VihfClaims | None = None
    ) -> SoapResponse:
        """ITI-57: the availability status of one document entry, from `original` to `new`."""
        return self.update(statuses=[(entry_uuid, original, new)], claims=claims)

    def update(
        self,
        *,
        entries: Sequence[tuple[etree._Element, Sequence[tuple[str, str]]]] = (),
        statuses: Sequence[tuple[str, str, str]] = (),
        claims: VihfClaims | None = None,
    ) -> SoapResponse:
        """ITI-57 with several changes (`update_request`): the registry applies all or none."""
        return self.call(
            "urn:ihe:iti:2010:UpdateDocumentSet", update_request(entries, statuses), claims=claims
        )

    # -- DMP transactions ------------------------------------------------------------------

    def dmp(
        self, transaction: str, tag: str, *, claims: VihfClaims | None = None, **attributes: str
    ) -> SoapResponse:
        body = etree.Element(f"{{{DMP_NS}}}{tag}", nsmap={"dmp": DMP_NS}, attrib=attributes)
        return self.call(f"urn:opendmp:dmp:{transaction}", body, claims=claims)

    def record_test(self, *, claims: VihfClaims | None = None) -> SoapResponse:
        return self.dmp("TD0.2", "RecordTestRequest", claims=claims)

    def demographics(
        self, ins: Ins | None = None, *, claims: VihfClaims | None = None
    ) -> tuple[SoapResponse, hl7v3.DossierFacts]:
        """TD0.2 in the HL7v3 shape (PRPA_IN201307UV02) for the VIHF's patient, or `ins`."""
        claims = claims or self.claims
        patient = ins or parse_hl7_ins(claims.patient_ins)
        response = self.call(
            hl7v3.QUERY_ACTION, hl7v3.query_message(patient, sender=claims.lps_id), claims=claims
        )
        return response, hl7v3.read_response(response.body)

    def record_create(
        self,
        patient: Mapping[str, str],
        *,
        consent: bool,
        opposes_break_glass: bool = False,
        opposes_centre_15: bool = False,
        claims: VihfClaims | None = None,
    ) -> SoapResponse:
        body = etree.Element(
            f"{{{DMP_NS}}}RecordCreateRequest",
            nsmap={"dmp": DMP_NS},
            consent=str(consent).lower(),
            opposesBreakGlass=str(opposes_break_glass).lower(),
            opposesCentre15=str(opposes_centre_15).lower(),
        )
        etree.SubElement(body, f"{{{DMP_NS}}}Patient", attrib=dict(patient))
        return self.call("urn:opendmp:dmp:TD1.1", body, claims=claims)


def stored_query_request(
    query_id: str, params: Mapping[str, str | Sequence[str]], return_type: str = "LeafClass"
) -> etree._Element:
    """The AdhocQueryRequest body of an ITI-18 stored query."""
    request = etree.Element(q(QUERY, "AdhocQueryRequest"), nsmap={"query": QUERY, "rim": RIM})
    etree.SubElement(
        request, q(QUERY, "ResponseOption"), returnComposedObjects="true", returnType=return_type
    )
    adhoc = etree.SubElement(request, q(RIM, "AdhocQuery"), id=query_id)
    for name, value in params.items():
        slot = etree.SubElement(adhoc, q(RIM, "Slot"), name=name)
        values = etree.SubElement(slot, q(RIM, "ValueList"))
        for item in [value] if isinstance(value, str) else value:
            etree.SubElement(values, q(RIM, "Value")).text = item
    return request


def retrieve_request(requests: Sequence[tuple[str, str]]) -> etree._Element:
    """The RetrieveDocumentSetRequest body of ITI-43 for [(repositoryUniqueId, documentUniqueId)]."""
    body = etree.Element(q(XDSB, "RetrieveDocumentSetRequest"), nsmap={"xdsb": XDSB})
    for repository, unique_id in requests:
        item = etree.SubElement(body, q(XDSB, "DocumentRequest"))
        etree.SubElement(item, q(XDSB, "RepositoryUniqueId")).text = repository
        etree.SubElement(item, q(XDSB, "DocumentUniqueId")).text = unique_id
    return body


def read_retrieved(response: SoapResponse) -> list[RetrievedDocument]:
    """The documents an ITI-43 response carries, inline or as MTOM attachments."""
    documents = []
    for part in response.body.findall(q(XDSB, "DocumentResponse")):
        holder = part.find(q(XDSB, "Document"))
        include = holder.find(q(XOP, "Include")) if holder is not None else None
        if include is not None:
            found = ebrim.attachment_for(include.get("href", ""), response.attachments)
            if found is None:
                raise soap.SoapError(f"MTOM part {include.get('href', '')!r} is missing")
            content = found
        else:
            content = base64.b64decode((holder.text if holder is not None else "") or "")
        documents.append(
            RetrievedDocument(
                unique_id=part.findtext(q(XDSB, "DocumentUniqueId")) or "",
                repository_unique_id=part.findtext(q(XDSB, "RepositoryUniqueId")) or "",
                mime_type=part.findtext(q(XDSB, "mimeType")) or "",
                content=content,
            )
        )
    return documents


def _copy(element: etree._Element) -> etree._Element:
    return parse_xml(etree.tostring(element))


def update_request(
    entries: Sequence[tuple[etree._Element, Sequence[tuple[str, str]]]] = (),
    statuses: Sequence[tuple[str, str, str]] = (),
) -> etree._Element:
    """An ITI-57 SubmitObjectsRequest: a new metadata version of each entry (an ExtrinsicObject
    from a query) with the confidentiality codes given as (code, codingScheme), and each
    (entryUUID, original status, new status) change, in one submission set."""
    request = etree.Element(q(LCM, "SubmitObjectsRequest"), nsmap={"lcm": LCM, "rim": RIM})
    objects = etree.SubElement(request, q(RIM, "RegistryObjectList"))
    scheme = ebrim.DocumentEntryScheme.CONFIDENTIALITY
    members: list[tuple[str, str]] = []
    for index, (entry, confidentiality) in enumerate(entries):
        member = f"NewVersion{index}"
        new_entry = etree.SubElement(objects, q(RIM, "ExtrinsicObject"))
        for name, value in entry.attrib.items():
            new_entry.set(name, value)
        new_entry.set("id", member)
        if "status" in new_entry.attrib:
            del new_entry.attrib["status"]
        for child in entry:
            if child.tag == q(RIM, "Classification") and child.get("classificationScheme") == scheme:
                continue
            new_entry.append(_copy(child))
        for code, coding_scheme in confidentiality:
            classification = etree.SubElement(
                new_entry,
                q(RIM, "Classification"),
                classificationScheme=scheme,
                classifiedObject=member,
                nodeRepresentation=code,
                id=f"conf-{index}-{code}",
            )
            _slot(classification, "codingScheme", coding_scheme)
        version = entry.find(q(RIM, "VersionInfo"))
        members.append((member, version.get("versionName", "") if version is not None else ""))
    for index, (entry_uuid, original, new) in enumerate(statuses):
        _association(
            objects,
            f"StatusChange{index}",
            "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus",
            entry_uuid,
            (("OriginalStatus", original), ("NewStatus", new)),
        )
    _update_submission_set(objects, members)
    return request


def _slot(parent: etree._Element, name: str, value: str) -> None:
    slot = etree.SubElement(parent, q(RIM, "Slot"), name=name)
    etree.SubElement(etree.SubElement(slot, q(RIM, "ValueList")), q(RIM, "Value")).text = value


def _association(
    objects: etree._Element, ident: str, kind: str, target: str, slots: Sequence[tuple[str, str]]
) -> None:
    """An association from the update's submission set to `target`."""
    association = etree.SubElement(
        objects,
        q(RIM, "Association"),
        id=ident,
        associationType=kind,
        sourceObject="SubmissionSet",
        targetObject=target,
    )
    for name, value in slots:
        _slot(association, name, value)


def _update_submission_set(objects: etree._Element, members: Sequence[tuple[str, str]]) -> None:
    """The submission set an ITI-57 update travels in (HasMember with PreviousVersion per new version)."""
    etree.SubElement(objects, q(RIM, "RegistryPackage"), id="SubmissionSet")
    etree.SubElement(
        objects,
        q(RIM, "Classification"),
        classifiedObject="SubmissionSet",
        classificationNode=ebrim.SubmissionSetScheme.NODE,
        id="SubmissionSetClassification",
    )
    for index, (member, previous_version) in enumerate(members):
        _association(
            objects,
            f"MemberAssociation{index}",
            "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember",
            member,
            (("SubmissionSetStatus", "Original"), ("PreviousVersion", previous_version)),
        )


def registry_objects(response: SoapResponse, tag: str) -> list[etree._Element]:
    """The ExtrinsicObject / RegistryPackage / Association / ObjectRef elements of a query response."""
    return response.body.findall(f"{q(RIM, 'RegistryObjectList')}/{q(RIM, tag)}")
