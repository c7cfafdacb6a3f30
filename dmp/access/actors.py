"""Who is acting, as plain data: built by each channel from its credentials, consumed by the policy.

An `Actor` carries only what the caller proved (CPS certificate, VIHF attributes, patient
session). Facts that depend on a record (authorisations, médecin traitant, legal
representation) are loaded separately into `RecordFacts`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class ActorKind(StrEnum):
    PATIENT = "patient"
    LEGAL_REPRESENTATIVE = "legal_representative"
    # Any person on the professional side: a PS (RPPS) or non-PS staff of a structure.
    PROFESSIONAL = "professional"
    HELPDESK = "helpdesk"
    OPERATOR = "operator"
    # An automated feed (external sources: reimbursement history, pharmacy dossier).
    SYSTEM = "system"


class AccessMode(StrEnum):
    """VIHF purposeofuse (TRE_R248)."""

    NORMAL = "normal"
    BREAK_GLASS = "bris_de_glace"
    CENTRE_15 = "centre_15"


class AuthenticationMode(StrEnum):
    """How the actor was authenticated (VIHF Authentification_Mode and local modes)."""

    DIRECT = "DIRECTE"  # CPS card of the person
    INDIRECT = "INDIRECTE"  # legal-entity certificate of the structure
    INDIRECT_REINFORCED = "INDIRECTE_RENFORCEE"  # AIR
    PATIENT_PASSWORD_OTP = "PATIENT_PASSWORD_OTP"  # noqa: S105 - a mode name, not a secret
    STAFF = "STAFF"  # helpdesk / operator staff login
    SYSTEM = "SYSTEM"


class Profession(StrEnum):
    """Common TRE_G15 profession codes (the matrix accepts any code)."""

    MEDECIN = "10"
    PHARMACIEN = "21"
    CHIRURGIEN_DENTISTE = "40"
    SAGE_FEMME = "50"
    INFIRMIER = "60"
    MASSEUR_KINESITHERAPEUTE = "70"
    PEDICURE_PODOLOGUE = "80"


@dataclass(frozen=True, slots=True)
class Software:
    """The calling software (LPS), as declared in the VIHF. The homologation number is not kept."""

    identifier: str
    name: str
    version: str
    # What its homologation covers (CREATION, ALIMENTATION, CONSULTATION), checked per transaction.
    profiles: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Actor:
    kind: ActorKind
    # PS national id (PS_IdNat, e.g. "8" + RPPS), patient INS, representative id, staff username.
    person_id: str
    display_name: str = ""
    authentication: AuthenticationMode = AuthenticationMode.DIRECT
    profession_code: str = ""  # TRE_G15
    specialty_code: str = ""  # TRE_R38 / R01
    role_codes: frozenset[str] = field(default_factory=frozenset)
    structure_id: str = ""  # Struct_IdNat
    structure_name: str = ""
    # The legal entity whose certificate signed for the structure (indirect mode, ADR 0011);
    # empty when the structure signed itself, or a card did.
    signer_structure_id: str = ""
    # True for a regulating doctor of a SAMU - Centre 15 (the only actor who may use centre_15).
    is_emergency_regulator: bool = False
    # The minor's "connexion secrète": documents fed are hidden from the legal representatives.
    secret_connection: bool = False
    software: Software | None = None
    # A patient's INS authority (NIR, NIA, test NIR...): an INS value is unique per authority only.
    ins_authority: str = ""

    @property
    def is_professional(self) -> bool:
        return self.kind is ActorKind.PROFESSIONAL

    @property
    def is_patient_side(self) -> bool:
        return self.kind in {ActorKind.PATIENT, ActorKind.LEGAL_REPRESENTATIVE}

    def label(self) -> str:
        return f"{self.kind.value}:{self.person_id}"


class Channel(StrEnum):
    XDS = "xds"
    MHD = "mhd"
    PROFESSIONAL_PORTAL = "ps_portal"
    PATIENT_PORTAL = "patient_portal"
    SUPPORT = "support"
    OPERATIONS = "operations"
    CONNECTOR = "connector"


class CredentialUse(Protocol):
    """The pending use of a single-use credential (`dmp.common.single_use.SingleUse`)."""

    written: bool

    def write(self) -> None: ...

    def statement(self) -> tuple[str, list[Any]]: ...

    def refusal(self, error: Exception) -> Exception | None: ...


@dataclass(frozen=True, slots=True)
class Caller:
    """An actor in the context of one request: access mode, its justification, the channel."""

    actor: Actor
    mode: AccessMode = AccessMode.NORMAL
    reason: str = ""  # mandatory justification of a break-glass access
    channel: Channel = Channel.OPERATIONS
    # A read's credential not yet used (ADR 0016): its first audit event writes the use in its
    # own statement where it can, so that the request commits once; the channel writes it
    # otherwise before answering. Not part of who the caller is.
    credential_use: CredentialUse | None = field(default=None, compare=False, repr=False)
