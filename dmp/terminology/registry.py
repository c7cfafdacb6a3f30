"""Lookup of value sets by name; pure data, loaded lazily once per process."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

DATA_FILE: Final = Path(__file__).resolve().parent / "data" / "valuesets.json"

# Names of the value sets OpenDMP validates against, with the JDV each one comes from.
VALUE_SETS: Final = {
    "class_code": "JDV_J06 XdsClassCode CI-SIS",
    "type_code": "JDV_J07 XdsTypeCode CI-SIS",
    "format_code": "JDV_J10 XdsFormatCode CI-SIS",
    "healthcare_facility_type": "JDV_J02 XdsHealthcareFacilityTypeCode CI-SIS",
    "practice_setting": "JDV_J04 XdsPracticeSettingCode CI-SIS",
    "confidentiality": "JDV_J08 XdsConfidentialityCode CI-SIS",
    "author_specialty": "JDV_J01 XdsAuthorSpecialty CI-SIS",
    "content_type": "JDV_J59 ContentTypeCode DMP",
}


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    system: str
    display: str


@dataclass(frozen=True)
class ValueSet:
    name: str
    oid: str
    codes: tuple[Code, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_code", {c.code: c for c in self.codes})
        object.__setattr__(self, "_by_pair", {(c.system, c.code): c for c in self.codes})

    def get(self, code: str, system: str | None = None) -> Code | None:
        if system:
            found: Code | None = self._by_pair.get((system, code))  # type: ignore[attr-defined]
            return found
        result: Code | None = self._by_code.get(code)  # type: ignore[attr-defined]
        return result

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and self.get(code) is not None

    def display(self, code: str) -> str:
        found = self.get(code)
        return found.display if found else code


@cache
def _load() -> dict[str, object]:
    data: dict[str, object] = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    return data


@cache
def value_set(name: str) -> ValueSet:
    """The value set `name` (one of VALUE_SETS); KeyError for an unknown name."""
    raw = _load()["value_sets"]
    if not isinstance(raw, dict):
        raise TypeError("value_sets must be an object")
    entry = raw[name]
    return ValueSet(
        name=name,
        oid=entry["oid"],
        codes=tuple(Code(code=c[0], system=c[1], display=c[2]) for c in entry["codes"]),
    )


def class_for_type(type_code: str) -> str | None:
    """The classCode the DMP associates with an XDS typeCode (ASS_X16), if any."""
    mapping = _load()["type_to_class"]
    if not isinstance(mapping, dict):
        raise TypeError("type_to_class must be an object")
    result = mapping.get(type_code)
    return str(result) if result is not None else None
