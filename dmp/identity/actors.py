"""Building policy actors from stored identities (channels add how the caller authenticated)."""

from __future__ import annotations

from dmp.access.actors import Actor, ActorKind, AuthenticationMode, Software
from dmp.identity.models import HealthProfessional, LegalRepresentative, Patient, Structure


def professional_actor(
    professional: HealthProfessional,
    structure: Structure | None = None,
    *,
    authentication: AuthenticationMode = AuthenticationMode.DIRECT,
    software: Software | None = None,
    secret_connection: bool = False,
    signer_structure_id: str = "",
) -> Actor:
    return Actor(
        kind=ActorKind.PROFESSIONAL,
        person_id=professional.national_id,
        display_name=professional.display_name,
        authentication=authentication,
        profession_code=professional.profession_code,
        specialty_code=professional.specialty_code,
        structure_id=structure.id_nat if structure else "",
        structure_name=structure.name if structure else "",
        is_emergency_regulator=bool(
            structure and structure.is_emergency_regulation_centre and professional.profession_code == "10"
        ),
        secret_connection=secret_connection,
        software=software,
        signer_structure_id=signer_structure_id,
    )


def patient_actor(patient: Patient) -> Actor:
    return Actor(
        kind=ActorKind.PATIENT,
        person_id=patient.ins,
        display_name=patient.display_name,
        authentication=AuthenticationMode.PATIENT_PASSWORD_OTP,
        ins_authority=patient.ins_authority,
    )


def representative_actor(representative: LegalRepresentative) -> Actor:
    return Actor(
        kind=ActorKind.LEGAL_REPRESENTATIVE,
        person_id=representative.person_id,
        display_name=f"{representative.family_name.upper()} {representative.given_name}",
        authentication=AuthenticationMode.PATIENT_PASSWORD_OTP,
    )


def staff_actor(kind: ActorKind, username: str, display_name: str = "") -> Actor:
    if kind not in {ActorKind.HELPDESK, ActorKind.OPERATOR}:
        raise ValueError("staff actors are helpdesk agents or operators")
    return Actor(
        kind=kind,
        person_id=username,
        display_name=display_name or username,
        authentication=AuthenticationMode.STAFF,
    )
