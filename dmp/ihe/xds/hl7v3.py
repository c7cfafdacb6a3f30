"""TD0.2 in the HL7v3 shape the DMP uses: PRPA_IN201307UV02 (Patient Registry Get Demographics
Query) answered by PRPA_IN201308UV02. Pure functions, shared with the vendor client.

The HL7v3 payload carries what HL7v3 can say (patient id, name, sex, birth time, registration
status); the DMP facts HL7v3 has no slot for (the caller's authorisation, médecin traitant,
web account, minor, oppositions, closure) travel in one `dmp:dossier` element of our namespace
inside the registration event, documented in docs/api/xds.md.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Final

from lxml import etree

from dmp.common.errors import ErrorCode, Problem, ValidationFailed
from dmp.identity.ins import Ins, InvalidIns, parse_ins

HL7: Final = "urn:hl7-org:v3"
DMP: Final = "urn:opendmp:dmp:1"
INTERACTIONS: Final = "2.16.840.1.113883.1.6"
QUERY_ACTION: Final = "urn:hl7-org:v3:PRPA_IN201307UV02"
RESPONSE_ACTION: Final = "urn:hl7-org:v3:PRPA_IN201308UV02"
DMP_DEVICE: Final = "1.2.250.1.213.4.1"


def h(tag: str) -> str:
    return f"{{{HL7}}}{tag}"


@dataclass(frozen=True)
class DemographicsQuery:
    message_id: tuple[str, str]  # (root, extension) of the request, echoed in the acknowledgement
    query_id: tuple[str, str]
    ins: Ins
    sender: str


@dataclass(frozen=True)
class DossierFacts:
    """TD0.2's answer, as the transaction hands it to the renderer."""

    status: str  # ACTIF / FERME / INEXISTANT
    authorisation: str  # NON_EXISTE / VALIDE / INTERDIT / EXPIRE
    medecin_traitant: bool
    web_account: bool
    minor: bool
    opposes_break_glass: bool
    opposes_centre_15: bool
    closed_at: dt.datetime | None = None
    closure_reason: str = ""
    family_name: str = ""
    given_names: str = ""
    birth_date: dt.date | None = None
    sex: str = ""


def _fail(message: str, where: str) -> ValidationFailed:
    return ValidationFailed([Problem(ErrorCode.INVALID, message, where)])


def _id(element: etree._Element | None) -> tuple[str, str]:
    if element is None:
        return ("", "")
    return (element.get("root", ""), element.get("extension", ""))


def parse_query(body: etree._Element) -> DemographicsQuery:
    """The INS asked about, and the ids to echo; a precise error for each missing part."""
    if body.tag != h("PRPA_IN201307UV02"):
        raise _fail("the body must be a PRPA_IN201307UV02 message", "Body")
    interaction = body.find(h("interactionId"))
    if interaction is None or interaction.get("extension") != "PRPA_IN201307UV02":
        raise _fail("interactionId must be PRPA_IN201307UV02", "interactionId")
    query = body.find(f"{h('controlActProcess')}/{h('queryByParameter')}")
    if query is None:
        raise _fail("controlActProcess/queryByParameter is required", "queryByParameter")
    value = query.find(f"{h('parameterList')}/{h('patientIdentifier')}/{h('value')}")
    if value is None:
        raise _fail("parameterList/patientIdentifier/value (the INS) is required", "patientIdentifier")
    try:
        ins = parse_ins(value.get("extension", ""), value.get("root", ""))
    except InvalidIns as exc:
        raise ValidationFailed(
            [Problem(ErrorCode.UNKNOWN_PATIENT, exc.message, "patientIdentifier")]
        ) from exc
    sender = body.find(f"{h('sender')}/{h('device')}/{h('id')}")
    return DemographicsQuery(
        message_id=_id(body.find(h("id"))),
        query_id=_id(query.find(h("queryId"))),
        ins=ins,
        sender=sender.get("root", "") if sender is not None else "",
    )


def _sub(parent: etree._Element, tag: str, **attributes: str) -> etree._Element:
    return etree.SubElement(parent, h(tag), attrib=attributes)


def _header(root: etree._Element, interaction: str, receiver: str, sender: str, now: dt.datetime) -> None:
    _sub(root, "id", root=str(uuid.uuid4()))
    _sub(root, "creationTime", value=now.strftime("%Y%m%d%H%M%S"))
    _sub(root, "interactionId", root=INTERACTIONS, extension=interaction)
    _sub(root, "processingCode", code="P")
    _sub(root, "processingModeCode", code="T")
    _sub(root, "acceptAckCode", code="NE" if interaction.endswith("08UV02") else "AL")
    for role, device in (("receiver", receiver), ("sender", sender)):
        holder = _sub(root, role, typeCode="RCV" if role == "receiver" else "SND")
        _sub(_sub(holder, "device", classCode="DEV", determinerCode="INSTANCE"), "id", root=device or "0")


def query_message(ins: Ins, *, sender: str, now: dt.datetime | None = None) -> etree._Element:
    """A PRPA_IN201307UV02 request for `ins` (used by the client library and the tests)."""
    now = now or dt.datetime.now(dt.UTC)
    root = etree.Element(h("PRPA_IN201307UV02"), nsmap={None: HL7}, ITSVersion="XML_1.0")  # type: ignore[dict-item]
    _header(root, "PRPA_IN201307UV02", DMP_DEVICE, sender, now)
    control = _sub(root, "controlActProcess", classCode="CACT", moodCode="EVN")
    _sub(control, "code", code="PRPA_TE201307UV02", codeSystem=INTERACTIONS)
    query = _sub(control, "queryByParameter")
    _sub(query, "queryId", root=sender or "0", extension=str(uuid.uuid4()))
    _sub(query, "statusCode", code="new")
    _sub(query, "responsePriorityCode", code="I")
    identifier = _sub(_sub(query, "parameterList"), "patientIdentifier")
    _sub(identifier, "value", root=ins.oid, extension=ins.value)
    _sub(identifier, "semanticsText").text = "Patient.id"
    return root


def _flag(value: bool) -> str:
    return "true" if value else "false"


def response_message(
    query: DemographicsQuery, facts: DossierFacts, *, now: dt.datetime | None = None
) -> etree._Element:
    """PRPA_IN201308UV02: acknowledgement AA, queryResponseCode OK (record found) or NF."""
    now = now or dt.datetime.now(dt.UTC)
    root = etree.Element(
        h("PRPA_IN201308UV02"),
        nsmap={None: HL7, "dmp": DMP},  # type: ignore[dict-item]
        ITSVersion="XML_1.0",
    )
    _header(root, "PRPA_IN201308UV02", query.sender, DMP_DEVICE, now)
    acknowledgement = _sub(root, "acknowledgement")
    _sub(acknowledgement, "typeCode", code="AA")
    root_id, extension = query.message_id
    _sub(
        _sub(acknowledgement, "targetMessage"),
        "id",
        root=root_id or "0",
        **({"extension": extension} if extension else {}),
    )
    control = _sub(root, "controlActProcess", classCode="CACT", moodCode="EVN")
    _sub(control, "code", code="PRPA_TE201308UV02", codeSystem=INTERACTIONS)
    found = facts.status != "INEXISTANT"
    if found:
        event = _sub(
            _sub(control, "subject", typeCode="SUBJ"), "registrationEvent", classCode="REG", moodCode="EVN"
        )
        _sub(event, "statusCode", code="active" if facts.status == "ACTIF" else "completed")
        patient = _sub(_sub(event, "subject1", typeCode="SBJ"), "patient", classCode="PAT")
        _sub(patient, "id", root=query.ins.oid, extension=query.ins.value)
        _sub(patient, "statusCode", code="active" if facts.status == "ACTIF" else "terminated")
        if facts.family_name:
            person = _sub(patient, "patientPerson", classCode="PSN", determinerCode="INSTANCE")
            name = _sub(person, "name")
            for given in facts.given_names.split():
                _sub(name, "given").text = given
            _sub(name, "family").text = facts.family_name
            _sub(
                person, "administrativeGenderCode", code=facts.sex or "UN", codeSystem="2.16.840.1.113883.5.1"
            )
            if facts.birth_date:
                _sub(person, "birthTime", value=facts.birth_date.strftime("%Y%m%d"))
        _sub(
            _sub(_sub(event, "custodian", typeCode="CST"), "assignedEntity", classCode="ASSIGNED"),
            "id",
            root=DMP_DEVICE,
        )
        dossier = etree.SubElement(
            event,
            f"{{{DMP}}}dossier",
            statut=facts.status,
            autorisation=facts.authorisation,
            medecinTraitant=_flag(facts.medecin_traitant),
            accesWebPatient=_flag(facts.web_account),
            mineur=_flag(facts.minor),
            oppositionBrisDeGlace=_flag(facts.opposes_break_glass),
            oppositionCentre15=_flag(facts.opposes_centre_15),
        )
        if facts.closed_at:
            dossier.set("dateFermeture", facts.closed_at.strftime("%Y%m%d%H%M%S"))
            dossier.set("motifFermeture", facts.closure_reason)
    ack = _sub(control, "queryAck")
    query_root, query_extension = query.query_id
    _sub(
        ack, "queryId", root=query_root or "0", **({"extension": query_extension} if query_extension else {})
    )
    _sub(ack, "queryResponseCode", code="OK" if found else "NF")
    return root


def read_response(body: etree._Element) -> DossierFacts:
    """The client side: DossierFacts from a PRPA_IN201308UV02 answer."""
    code = body.find(f"{h('controlActProcess')}/{h('queryAck')}/{h('queryResponseCode')}")
    if code is None or code.get("code") == "NF":
        return DossierFacts("INEXISTANT", "NON_EXISTE", False, False, False, False, False)
    event = body.find(f"{h('controlActProcess')}/{h('subject')}/{h('registrationEvent')}")
    dossier = event.find(f"{{{DMP}}}dossier") if event is not None else None
    if event is None or dossier is None:
        raise _fail("registrationEvent with dmp:dossier expected", "PRPA_IN201308UV02")
    person = event.find(f"{h('subject1')}/{h('patient')}/{h('patientPerson')}")
    family = given = sex = ""
    birth: dt.date | None = None
    if person is not None:
        family = person.findtext(f"{h('name')}/{h('family')}") or ""
        given = " ".join(g.text or "" for g in person.findall(f"{h('name')}/{h('given')}"))
        gender = person.find(h("administrativeGenderCode"))
        sex = gender.get("code", "") if gender is not None else ""
        born = person.find(h("birthTime"))
        if born is not None and born.get("value"):
            birth = dt.datetime.strptime(born.get("value", "")[:8], "%Y%m%d").date()  # noqa: DTZ007 - a date

    def flag(name: str) -> bool:
        return dossier.get(name) == "true"

    closed = dossier.get("dateFermeture")
    return DossierFacts(
        status=dossier.get("statut", ""),
        authorisation=dossier.get("autorisation", ""),
        medecin_traitant=flag("medecinTraitant"),
        web_account=flag("accesWebPatient"),
        minor=flag("mineur"),
        opposes_break_glass=flag("oppositionBrisDeGlace"),
        opposes_centre_15=flag("oppositionCentre15"),
        closed_at=dt.datetime.strptime(closed, "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC) if closed else None,
        closure_reason=dossier.get("motifFermeture", ""),
        family_name=family,
        given_names=given,
        birth_date=birth,
        sex=sex,
    )
