"""Reading identities: plain lookups, the access check belongs to the service that uses them."""

from __future__ import annotations

import uuid

from dmp.common.ttl_cache import TtlCache
from dmp.identity.models import Affiliation, Certificate, HealthProfessional, LegalRepresentative, Structure


def legal_representative_get(*, patient_id: int, public_id: uuid.UUID) -> LegalRepresentative | None:
    """The legal representative `public_id` of patient `patient_id`; None if unknown or someone else's."""
    return LegalRepresentative.objects.filter(public_id=public_id, patient_id=patient_id).first()


_certificates: TtlCache[Certificate | None] = TtlCache("certificates")
_structures: TtlCache[Structure | None] = TtlCache("structures")
_affiliations: TtlCache[bool] = TtlCache("affiliations")


def registered_certificate(fingerprint_sha256: str) -> Certificate | None:
    """The unrevoked certificate registered under this fingerprint, with its owner loaded.

    Remembered for `OPENDMP_REFERENCE_CACHE_SECONDS`: a revocation takes effect within that delay."""
    return _certificates.get(
        fingerprint_sha256,
        lambda: (
            Certificate.objects.select_related("professional", "structure")
            .filter(fingerprint_sha256=fingerprint_sha256, revoked_at__isnull=True)
            .first()
        ),
    )


def structure_get(id_nat: str) -> Structure | None:
    """The structure with this national identifier (Struct_IdNat); None if unknown or empty."""
    if not id_nat:
        return None
    return _structures.get(id_nat, lambda: Structure.objects.filter(id_nat=id_nat).first())


def signs_for_structure(signer: Structure, named: Structure | None) -> bool:
    """Whether a certificate of `signer` may sign for `named`, the structure a VIHF or a lot
    names: its own, or a site (établissement géographique) of it as legal entity (ADR 0011)."""
    return named is not None and (named.pk == signer.pk or named.legal_entity_id == signer.pk)


def is_affiliated(professional: HealthProfessional, structure: Structure) -> bool:
    """Whether `professional` works in `structure` (an Affiliation row), as the directory says."""
    return _affiliations.get(
        (professional.pk, structure.pk),
        lambda: Affiliation.objects.filter(professional=professional, structure=structure).exists(),
    )


def active_professional_get(national_id: str) -> HealthProfessional | None:
    """The active professional with this national identifier (PS_IdNat); None otherwise."""
    return HealthProfessional.objects.filter(national_id=national_id, is_active=True).first()


def professional_get(national_id: str) -> HealthProfessional | None:
    """The professional with this national identifier (PS_IdNat), active or not; None if unknown."""
    return HealthProfessional.objects.filter(national_id=national_id).first()


__all__ = [
    "active_professional_get",
    "is_affiliated",
    "legal_representative_get",
    "professional_get",
    "registered_certificate",
    "structure_get",
]
