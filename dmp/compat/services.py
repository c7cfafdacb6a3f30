"""Homologation numbers: register a product, check a number on every incoming flow."""

from __future__ import annotations

import hashlib
import secrets

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


def software_check(number: str) -> SoftwareProduct:
    """The active product holding `number`, or `UnknownSoftware`."""
    if not number or len(number) > 128:
        raise UnknownSoftware("missing or malformed homologation number")
    digest = homologation_hash(number)
    product = _products.get(digest, lambda: SoftwareProduct.objects.filter(homologation_hash=digest).first())
    if product is None or product.status != SoftwareProduct.Status.ACTIVE:
        raise UnknownSoftware("unknown or inactive homologation number")
    return product
