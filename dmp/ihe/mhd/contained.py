"""The people of a document's metadata as FHIR resources contained in its DocumentReference, and
back: authors (PractitionerRole → Practitioner + Organization, with role, specialty and telecom),
the legal authenticator (Practitioner) and sourcePatientInfo (Patient).

Pure functions over the XDS values (no ORM), so the server's FHIR views, its ITI-65 reader and the
vendor client (`opendmp_client.fhir`) write and read one shape, and a document keeps the same
metadata whichever channel it went in and out by.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from dmp.documents.metadata import Author

PS_ID_OID: Final = "1.2.250.1.71.4.2.1"
STRUCTURE_ID_OID: Final = "1.2.250.1.71.4.2.2"
PS_ID_SYSTEM: Final = f"urn:oid:{PS_ID_OID}"
STRUCTURE_ID_SYSTEM: Final = f"urn:oid:{STRUCTURE_ID_OID}"
PROFESSION_SYSTEM: Final = (
    "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
)
SPECIALTY_SYSTEM: Final = "urn:oid:1.2.250.1.213.1.1.4.5"  # the G15_<profession>/<specialty> codes
GENDERS: Final = {"M": "male", "F": "female", "U": "unknown", "O": "other"}

# Resolves a Reference of the resource being read to the resource it names, if of `kind`.
Resolve = Callable[[dict[str, Any] | None, str], dict[str, Any] | None]


def _component(value: str, index: int) -> str:
    parts = value.split("^")
    return parts[index] if index < len(parts) else ""


# --- writing --------------------------------------------------------------------------------


def _xtn_contact(xtn: str) -> dict[str, str]:
    """An XTN (`^NET^Internet^mail`, `^PRN^PH^^^^^^^^^number`) as a ContactPoint."""
    if _component(xtn, 1) == "NET" or _component(xtn, 2) == "Internet":
        return {"system": "email", "value": _component(xtn, 3)}
    return {"system": "phone", "value": _component(xtn, 11) or _component(xtn, 0)}


def practitioner(
    key: str, person_id: str, family: str, given: str, telecom: Iterable[str] = ()
) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Practitioner", "id": key}
    if person_id:
        resource["identifier"] = [{"system": PS_ID_SYSTEM, "value": person_id}]
    name: dict[str, Any] = {}
    if family:
        name["family"] = family
    if given:
        name["given"] = given.split()
    if name:
        resource["name"] = [name]
    contacts = [_xtn_contact(x) for x in telecom]
    if contacts:
        resource["telecom"] = contacts
    return resource


def author_resources(author: Author, key: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The Reference of DocumentReference.author for `author`, and the resources to contain: a
    PractitionerRole pointing to its Practitioner and Organization. The Reference keeps the PS
    identifier and a display too, for clients that read only those."""
    contained: list[dict[str, Any]] = []
    role: dict[str, Any] = {"resourceType": "PractitionerRole", "id": key}
    if author.person_id or author.family_name or author.telecom:
        person = practitioner(
            f"{key}-person", author.person_id, author.family_name, author.given_name, author.telecom
        )
        contained.append(person)
        role["practitioner"] = {"reference": f"#{person['id']}"}
    if author.institutions:
        organisation: dict[str, Any] = {"resourceType": "Organization", "id": f"{key}-organization"}
        if author.structure_id:
            organisation["identifier"] = [{"system": STRUCTURE_ID_SYSTEM, "value": author.structure_id}]
        name = _component(author.institutions[0], 0)
        if name:
            organisation["name"] = name
        contained.append(organisation)
        role["organization"] = {"reference": f"#{organisation['id']}"}
    if author.roles:
        role["code"] = [{"coding": [{"system": PROFESSION_SYSTEM, "code": r}]} for r in author.roles]
    if author.specialties:
        role["specialty"] = [
            {"coding": [{"system": SPECIALTY_SYSTEM, "code": s}]} for s in author.specialties
        ]
    contained.append(role)
    reference: dict[str, Any] = {"reference": f"#{key}"}
    display = author.display_name or (_component(author.institutions[0], 0) if author.institutions else "")
    if display:
        reference["display"] = display
    if author.person_id:
        reference["identifier"] = {"system": PS_ID_SYSTEM, "value": author.person_id}
    return reference, contained


def authenticator_resources(
    xcn: str, key: str = "authenticator"
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """DocumentReference.authenticator for the XDS legalAuthenticator (an XCN)."""
    person = practitioner(key, _component(xcn, 0), _component(xcn, 1), _component(xcn, 2))
    return {"reference": f"#{key}"}, [person]


def _pid(values: Sequence[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for value in values:
        name, _, content = value.partition("|")
        fields.setdefault(name, content)
    return fields


def source_patient_resources(
    values: Sequence[str], key: str = "source-patient"
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """DocumentReference.context.sourcePatientInfo for the XDS sourcePatientInfo (PID-3 identifier,
    PID-5 name, PID-7 birth date, PID-8 sex)."""
    fields = _pid(values)
    patient: dict[str, Any] = {"resourceType": "Patient", "id": key}
    if fields.get("PID-3"):
        cx = fields["PID-3"]
        authority = _component(cx, 3).split("&")
        identifier = {"value": _component(cx, 0)}
        if len(authority) > 1 and authority[1]:
            identifier["system"] = f"urn:oid:{authority[1]}"
        patient["identifier"] = [identifier]
    if fields.get("PID-5"):
        name: dict[str, Any] = {"family": _component(fields["PID-5"], 0)}
        given = [g for g in (_component(fields["PID-5"], 1),) if g]
        if given:
            name["given"] = given
        patient["name"] = [name]
    born = fields.get("PID-7", "")
    if len(born) >= 8 and born[:8].isdigit():
        patient["birthDate"] = f"{born[:4]}-{born[4:6]}-{born[6:8]}"
    if fields.get("PID-8"):
        patient["gender"] = GENDERS.get(fields["PID-8"], "unknown")
    return {"reference": f"#{key}"}, [patient]


@dataclass
class People:
    """The people of a document as FHIR: DocumentReference.author, .authenticator,
    .context.sourcePatientInfo (None when absent) and the resources to contain for them."""

    authors: list[dict[str, Any]]
    authenticator: dict[str, Any] | None
    source_patient: dict[str, Any] | None
    contained: list[dict[str, Any]]


def people(authors: Iterable[Author], legal_authenticator: str, source_patient_info: Sequence[str]) -> People:
    result = People([], None, None, [])
    for index, author in enumerate(authors):
        reference, resources = author_resources(author, f"author-{index}")
        result.authors.append(reference)
        result.contained += resources
    if legal_authenticator:
        result.authenticator, resources = authenticator_resources(legal_authenticator)
        result.contained += resources
    if source_patient_info:
        result.source_patient, resources = source_patient_resources(source_patient_info)
        result.contained += resources
    return result


# --- reading --------------------------------------------------------------------------------


def _identifier_value(resource: dict[str, Any], system: str) -> str:
    return next(
        (str(i.get("value", "")) for i in resource.get("identifier") or [] if i.get("system") == system), ""
    )


def _name(resource: dict[str, Any]) -> tuple[str, str]:
    name = (resource.get("name") or [{}])[0]
    return str(name.get("family", "")), " ".join(str(g) for g in name.get("given") or [])


def _xtn(contact: dict[str, Any]) -> str:
    value = str(contact.get("value", ""))
    if contact.get("system") == "email":
        return f"^NET^Internet^{value}"
    return f"^PRN^PH^^^^^^^^^{value}"


def _codes(concepts: Iterable[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(
        str(coding["code"])
        for concept in concepts
        for coding in (concept.get("coding") or [])[:1]
        if coding.get("code")
    )


def read_author(reference: dict[str, Any], resolve: Resolve) -> Author:
    """An XDS author from a logical reference (PS identifier, display) or a PractitionerRole /
    Practitioner / Organization it points to, with their national identifiers, the role's
    profession and specialty codes and the practitioner's telecom."""
    identifier = reference.get("identifier") or {}
    person_id = str(identifier.get("value", ""))
    family, _, given = str(reference.get("display", "")).partition(" ")
    organisation = resolve(reference, "Organization")
    person = resolve(reference, "Practitioner")
    role = resolve(reference, "PractitionerRole")
    if role is not None:
        person = resolve(role.get("practitioner"), "Practitioner")
        organisation = resolve(role.get("organization"), "Organization")
    telecom: tuple[str, ...] = ()
    if person is not None:
        person_id = _identifier_value(person, PS_ID_SYSTEM) or person_id
        family, given = _name(person)
        telecom = tuple(_xtn(c) for c in person.get("telecom") or [] if c.get("value"))
    institutions: tuple[str, ...] = ()
    structure_id = ""
    if organisation is not None:
        structure_id = _identifier_value(organisation, STRUCTURE_ID_SYSTEM)
        name = str(organisation.get("name", ""))
        if structure_id:
            institutions = (f"{name}^^^^^&{STRUCTURE_ID_OID}&ISO^IDNST^^^{structure_id}",)
    xcn = f"{person_id}^{family}^{given}^^^^^^&{PS_ID_OID}&ISO" if person_id else ""
    return Author(
        person=xcn,
        person_id=person_id,
        family_name=family,
        given_name=given,
        institutions=institutions,
        structure_id=structure_id,
        roles=_codes((role or {}).get("code") or []),
        specialties=_codes((role or {}).get("specialty") or []),
        telecom=telecom,
    )


def read_authenticator(reference: dict[str, Any] | None, resolve: Resolve) -> str:
    """The XDS legalAuthenticator (an XCN) of DocumentReference.authenticator: a Practitioner, or
    a PractitionerRole's; "" for none (an Organization has no place in an XCN)."""
    if not reference:
        return ""
    person = resolve(reference, "Practitioner")
    role = resolve(reference, "PractitionerRole")
    if role is not None:
        person = resolve(role.get("practitioner"), "Practitioner")
    person_id = _identifier_value(person, PS_ID_SYSTEM) if person is not None else ""
    if not person_id:
        person_id = str((reference.get("identifier") or {}).get("value", ""))
    if not person_id:
        return ""
    family, given = _name(person) if person is not None else ("", "")
    return f"{person_id}^{family}^{given}^^^^^^&{PS_ID_OID}&ISO"


def read_source_patient(reference: dict[str, Any] | None, resolve: Resolve) -> tuple[str, ...]:
    """The XDS sourcePatientInfo (PID-3, PID-5, PID-7, PID-8) of context.sourcePatientInfo."""
    patient = resolve(reference, "Patient") if reference else None
    if patient is None:
        return ()
    values = []
    for identifier in patient.get("identifier") or []:
        value = str(identifier.get("value", ""))
        system = str(identifier.get("system", ""))
        if value:
            oid = system.removeprefix("urn:oid:") if system.startswith("urn:oid:") else ""
            values.append(f"PID-3|{value}^^^&{oid}&ISO" if oid else f"PID-3|{value}")
            break
    family, given = _name(patient)
    if family or given:
        values.append(f"PID-5|{family}^{given}")
    born = str(patient.get("birthDate", ""))
    if born:
        values.append(f"PID-7|{born.replace('-', '')}")
    gender = {v: k for k, v in GENDERS.items()}.get(str(patient.get("gender", "")))
    if gender:
        values.append(f"PID-8|{gender}")
    return tuple(values)
