"""Homologation numbers: register a product, check a number on every incoming flow."""

from __future__ import annotations

import hashlib
import secrets

from dmp.access.actors import Software
from dmp.common.errors import DomainError, ErrorCode
from dmp.common.ttl_cache import TtlCache, clear_reference_caches
from dmp.compat.models import SoftwareProduct


class UnknownSoftware(DomainError):
    """The homologation number is unknown, suspended or withdrawn."""

    code = ErrorCode.FORBIDDEN


# Checked on every flow; a suspension made by another process applies within the cache delay.
_products: TtlCache[SoftwareProduct | None] = TtlCache("software products")


def homologation_hash(number: str) -> str:
    # Numbers are random (>= 64 bits), so a plain domain-separated hash resists guessing and
    # survives a SECRET_KEY rotation.
    return hashlib.sha256(b"opendmp-homologation:" + number.strip().encode()).hexdigest()


def software_register(
    *,
    vendor: str,
    name: str,
    versions: str = "",
    profiles: list[str] | None = None,
    number: str | None = None,
) -> tuple[SoftwareProduct, str]:
    """Register a homologated product; returns it and its (secret) homologation number."""
    number = number or f"OPENDMP-{secrets.token_hex(8).upper()}"
    product = SoftwareProduct.objects.create(
        vendor=vendor,
        name=name,
        versions=versions,
        homologation_hash=homologation_hash(number),
        homologation_hint=number[-4:],
        profiles=profiles or [p.value for p in SoftwareProduct.Profile],
    )
    clear_reference_caches()
    return product, number


def software_check(number: str, *, version: str | None = None) -> SoftwareProduct:
    """The active product holding `number`, or `UnknownSoftware`; with `version`, only if that
    version is one the homologation covers (a product registered without versions covers all)."""
    if not number or len(number) > 128:
        raise UnknownSoftware("missing or malformed homologation number")
    digest = homologation_hash(number)
    product = _products.get(digest, lambda: SoftwareProduct.objects.filter(homologation_hash=digest).first())
    if product is None or product.status != SoftwareProduct.Status.ACTIVE:
        raise UnknownSoftware("unknown or inactive homologation number")
    covered = {v.strip() for v in product.versions.split(",") if v.strip()}
    if version is not None and covered and version.strip() not in covered:
        raise UnknownSoftware(f"version {version.strip()!r} of {product.name} is not homologated")
    return product


class SoftwareProfileMissing(DomainError):
    """The software's homologation does not cover the transaction (a consultation-only
    product feeding, say)."""

    code = ErrorCode.FORBIDDEN


def software_profile_check(software: Software | None, profile: str) -> None:
    """Refuse a transaction of `profile` to a software whose homologation does not cover it
    (no software: a portal, which no homologation concerns)."""
    if software is not None and profile not in software.profiles:
        label = SoftwareProduct.Profile(profile).label
        raise SoftwareProfileMissing(f"the software is not homologated for the profile {label}")
