"""INS: the patient's national health identifier (pure functions, no I/O).

* INS-NIR / INS-NIA: a 13-character NIR (or NIA) plus its 2-digit key (97 - n mod 97); Corsica
  departments "2A"/"2B" count as 19/18 for the key.
* INS-C (2010 DMP): computed from Carte Vitale data. Seed = first name (letters only, upper case,
  no accents, 10 characters padded with spaces) + birth date YYMMDD (lunar dates allowed) + NIR
  without its key; SHA-256; first 16 hex digits as a 20-digit decimal; key 97 - n mod 97.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from dmp.common.errors import DomainError, ErrorCode


class InsAuthority(StrEnum):
    """Assigning authority OIDs of the INS."""

    NIR = "1.2.250.1.213.1.4.8"
    NIA = "1.2.250.1.213.1.4.9"
    TEST_NIR = "1.2.250.1.213.1.4.10"
    TEST_NIA = "1.2.250.1.213.1.4.11"
    INS_C = "1.2.250.1.213.1.4.2"

    @property
    def is_test(self) -> bool:
        return self in {InsAuthority.TEST_NIR, InsAuthority.TEST_NIA}


class InvalidIns(DomainError):
    code = ErrorCode.INVALID_INS


_NIR_RE = re.compile(r"^[1-478]\d{4}(\d{2}|2A|2B)\d{6}$")
_INS_C_RE = re.compile(r"^\d{22}$")
_HL7_ID_RE = re.compile(r"^(?P<id>[0-9AB]{13,22})\^\^\^&(?P<oid>[0-9.]+)&ISO(\^NH)?$")


def _nir_number(body: str) -> int:
    if body[5:7] == "2A":
        return int(body[:5] + "19" + body[7:])
    if body[5:7] == "2B":
        return int(body[:5] + "18" + body[7:])
    return int(body)


def nir_key(body: str) -> int:
    """The 2-digit control key of a 13-character NIR/NIA body."""
    if not _NIR_RE.match(body):
        raise InvalidIns(f"{body!r} is not a 13-character NIR body")
    return 97 - _nir_number(body) % 97


@dataclass(frozen=True, slots=True)
class Ins:
    """A validated INS: value (15 characters for NIR/NIA, 22 digits for INS-C) and authority."""

    value: str
    authority: InsAuthority

    @property
    def oid(self) -> str:
        return self.authority.value

    def hl7(self) -> str:
        """The XDS / HL7 CX form: `value^^^&oid&ISO^NH`."""
        return f"{self.value}^^^&{self.oid}&ISO^NH"

    def __str__(self) -> str:
        return self.value


def parse_ins(value: str, authority: str | InsAuthority) -> Ins:
    """Validate an INS value against its authority, raising `InvalidIns` with a precise reason."""
    try:
        auth = InsAuthority(authority)
    except ValueError:
        raise InvalidIns(f"unknown INS assigning authority {authority!r}") from None
    cleaned = value.strip().upper().replace(" ", "")
    if auth is InsAuthority.INS_C:
        if not _INS_C_RE.match(cleaned):
            raise InvalidIns("an INS-C has exactly 22 digits")
        body, key = cleaned[:20], int(cleaned[20:])
        if 97 - int(body) % 97 != key:
            raise InvalidIns("the INS-C control key is wrong")
        return Ins(cleaned, auth)
    if len(cleaned) != 15:
        raise InvalidIns(f"an INS-NIR/NIA has 15 characters (13 + key), got {len(cleaned)}")
    body, key_text = cleaned[:13], cleaned[13:]
    if not _NIR_RE.match(body):
        raise InvalidIns("the NIR must be 13 digits (department 2A/2B allowed), starting with 1-4, 7 or 8")
    if not key_text.isdigit():
        raise InvalidIns("the NIR key must be 2 digits")
    if nir_key(body) != int(key_text):
        raise InvalidIns("the NIR control key does not match (97 - NIR mod 97)")
    return Ins(cleaned, auth)


def parse_hl7_ins(cx: str) -> Ins:
    """Parse `value^^^&oid&ISO^NH` (XDS patientId / VIHF resource-id)."""
    match = _HL7_ID_RE.match(cx.strip())
    if not match:
        raise InvalidIns(f"{cx!r} is not an INS in HL7 CX form value^^^&oid&ISO")
    return parse_ins(match["id"], match["oid"])


def _normalise_first_name(first_name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", first_name)
    letters = "".join(ch for ch in decomposed if ch.isascii() and ch.isalpha()).upper()
    if not letters:
        raise InvalidIns("the first name has no letter to compute an INS-C from")
    return letters[:10].ljust(10, " ")


def compute_ins_c(*, nir: str, first_name: str, birth_date_yymmdd: str) -> Ins:
    """INS-C from Carte Vitale data (NIR of the beneficiary, first name, birth date YYMMDD).

    The birth date is a string because Vitale cards carry "lunar" dates (day 00, month 00-20)
    that are not calendar dates.
    """
    nir_clean = nir.strip().upper().replace(" ", "")
    body = nir_clean[:13]
    if len(nir_clean) == 15:
        parse_ins(nir_clean, InsAuthority.NIR)
    elif len(nir_clean) != 13 or not _NIR_RE.match(body):
        raise InvalidIns("the Vitale NIR must have 13 characters, or 15 with its key")
    if not re.fullmatch(r"\d{6}", birth_date_yymmdd):
        raise InvalidIns("the birth date must be 6 digits YYMMDD")
    seed = _normalise_first_name(first_name) + birth_date_yymmdd + body
    number = int(hashlib.sha256(seed.encode("ascii")).hexdigest()[:16], 16)
    digits = f"{number:020d}"
    return Ins(f"{digits}{97 - number % 97:02d}", InsAuthority.INS_C)


def make_nir(*, sex: int, year: int, month: int, department: str, commune: int, order: int) -> str:
    """A syntactically valid NIR (15 characters with key), for test and demo identities."""
    body = f"{sex}{year % 100:02d}{month:02d}{department}{commune:03d}{order:03d}"
    return f"{body}{nir_key(body):02d}"
