"""Clients of the external sources: an HTTP/JSON client and a deterministic simulator (demo).

The HTTP client talks to an endpoint configured by the operator only (never a URL from user
input), with a timeout, a response size cap and strict parsing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import random
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dmp.common import clock
from dmp.common.errors import DomainError, ErrorCode
from dmp.identity.ins import Ins

logger = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 2 * 1024 * 1024
MAX_ITEMS = 2000
# No reimbursed act or dispensation of a living patient's history predates this: an earlier
# date is a source's placeholder or typing error, not history.
EARLIEST_ITEM_DATE = dt.date(1900, 1, 1)


class SourceUnavailable(DomainError):
    code = ErrorCode.CONFLICT


class ExternalItem(BaseModel):
    """One reimbursed act or one dispensed medicine, as the source reports it."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    item_id: str = Field(min_length=1, max_length=64)
    date: dt.date
    label: str = Field(min_length=1, max_length=200)
    code: str = Field(default="", max_length=32)
    quantity: str = Field(default="", max_length=32)
    amount_eur: Decimal | None = Field(default=None, ge=0, le=1_000_000)
    prescriber: str = Field(default="", max_length=200)
    provider: str = Field(default="", max_length=200)

    @field_validator("date")
    @classmethod
    def _plausible_date(cls, value: dt.date) -> dt.date:
        # The published document is dated by its latest item: a future date would be refused
        # by the submission, every night, for this record.
        if value > clock.today():
            raise ValueError("date is in the future")
        if value < EARLIEST_ITEM_DATE:
            raise ValueError(f"date is before {EARLIEST_ITEM_DATE.isoformat()}")
        return value

    @field_validator("item_id", "label", "code", "quantity", "prescriber", "provider")
    @classmethod
    def _printable(cls, value: str) -> str:
        # XML 1.0 cannot carry most of them, and a line break or tab has no place in these
        # one-line fields. (Pydantic already refuses lone surrogates.)
        if any(unicodedata.category(char) == "Cc" for char in value):
            raise ValueError("contains a control character")
        return value


class _Payload(BaseModel):
    """The envelope only: items are parsed one by one, so that one bad item spoils no other."""

    model_config = ConfigDict(frozen=True)

    items: list[Any] = Field(max_length=MAX_ITEMS)


def parse_items(raw_items: list[Any], *, source: str) -> list[ExternalItem]:
    """The valid items of a source's answer; each refused one is logged with its reasons."""
    items = []
    for index, raw in enumerate(raw_items):
        try:
            items.append(ExternalItem.model_validate(raw))
        except ValidationError as exc:
            # Field names and messages only: the refused values may be health data.
            reasons = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'item'}: {error['msg']}"
                for error in exc.errors(include_url=False, include_input=False)
            )
            item_id = raw.get("item_id") if isinstance(raw, dict) else None
            reference = f"{str(item_id)[:64]!r}" if item_id is not None else "without item_id"
            logger.warning("external source %s: item #%d %s refused: %s", source, index, reference, reasons)
    return items


class SourceClient(Protocol):
    def fetch(self, *, ins: Ins, since: dt.date | None) -> list[ExternalItem]: ...


class HttpSourceClient:
    """GET {base}/patients/{ins}/items?authority=OID&since=YYYY-MM-DD with a bearer token."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0) -> None:
        if not base_url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError("external sources must be reached over HTTPS")
        self.base_url = base_url.rstrip("/")
        # What logs name the source by: the operator's URL may carry credentials.
        self.host = urllib.parse.urlsplit(base_url).hostname or ""
        self.token = token
        self.timeout = timeout

    def fetch(self, *, ins: Ins, since: dt.date | None) -> list[ExternalItem]:
        query = {"authority": ins.oid}
        if since is not None:
            query["since"] = since.isoformat()
        url = (
            f"{self.base_url}/patients/{urllib.parse.quote(ins.value)}/items?{urllib.parse.urlencode(query)}"
        )
        request = urllib.request.Request(  # noqa: S310 - operator-configured https URL, checked above
            url, headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                body = response.read(MAX_RESPONSE_BYTES + 1)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise SourceUnavailable(f"external source unreachable: {exc}") from exc
        if len(body) > MAX_RESPONSE_BYTES:
            raise SourceUnavailable("external source answer is too large")
        try:
            payload = _Payload.model_validate(json.loads(body))
        except (ValueError, ValidationError) as exc:
            raise SourceUnavailable("external source answer is malformed") from exc
        return parse_items(payload.items, source=self.host)


_ACTS = [
    ("C", "Consultation de médecine générale", Decimal("18.20")),
    ("APC", "Avis ponctuel de consultant", Decimal("39.20")),
    ("AMI 2", "Soins infirmiers", Decimal("3.78")),
    ("B 120", "Examen de biologie médicale", Decimal("24.30")),
    ("ZBQK002", "Radiographie du thorax", Decimal("15.96")),
]
_MEDICINES = [
    ("3400930000014", "Paracétamol 1 g, comprimé", "1 boîte"),
    ("3400936012345", "Amoxicilline 1 g, comprimé dispersible", "1 boîte"),
    ("3400934567890", "Ramipril 5 mg, comprimé", "3 boîtes"),
    ("3400937654321", "Metformine 850 mg, comprimé", "2 boîtes"),
]


class SimulatedSourceClient:
    """Deterministic synthetic history per patient, for the demo and the test platform."""

    def __init__(self, kind: str, *, today: dt.date) -> None:
        self.kind = kind
        self.today = today

    def fetch(self, *, ins: Ins, since: dt.date | None) -> list[ExternalItem]:
        seed = int.from_bytes(hashlib.sha256(f"{self.kind}:{ins.value}".encode()).digest()[:8], "big")
        rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
        items = []
        for index in range(rng.randint(3, 9)):
            day = self.today - dt.timedelta(days=rng.randint(1, 700))
            if self.kind == "DP":
                code, label, quantity = rng.choice(_MEDICINES)
                items.append(
                    ExternalItem(
                        item_id=f"{seed % 10**8}-{index}",
                        date=day,
                        label=label,
                        code=code,
                        quantity=quantity,
                        provider="Pharmacie du Centre",
                    )
                )
            else:
                code, label, amount = rng.choice(_ACTS)
                items.append(
                    ExternalItem(
                        item_id=f"{seed % 10**8}-{index}", date=day, label=label, code=code, amount_eur=amount
                    )
                )
        items.sort(key=lambda item: (item.date, item.item_id))
        return [item for item in items if since is None or item.date > since]
