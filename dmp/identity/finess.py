"""The FINESS extraction (data.gouv.fr "FINESS Extraction du Fichier des établissements"),
read into the sites (établissements géographiques) it lists and the legal entity (entité
juridique) of each: the directory that says whose certificate signs for whom (ADR 0011).

The file is Windows-1252 text, `;`-separated, without column names: a first line
`finess;etalab;...` describing the extraction, then one `structureet` line per site, then
`geolocalisation` lines (coordinates, not used here). Pure parsing: no database.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Final

from django.utils.translation import gettext

from dmp.common.errors import ErrorCode, Problem, ValidationFailed

# Columns of a `structureet` line (0-based): section, nofinesset, nofinessej, rs, rslongue, ...,
# ligneacheminement ("01440 VIRIAT") at 15.
_SITE, _LEGAL_ENTITY, _SHORT_NAME, _LONG_NAME, _DELIVERY_LINE = 1, 2, 3, 4, 15
_COLUMNS: Final = 16  # the fewest a line needs for what is read
# Two characters of département (2A and 2B for Corsica), then seven digits.
FINESS_NUMBER: Final = re.compile(r"(?:\d{2}|2[AB])\d{7}")
_POSTCODE: Final = re.compile(r"^\d{5}\s+")
_NAME_SIZE: Final = 200  # Structure.name
_CITY_SIZE: Final = 100  # Structure.city


@dataclass(frozen=True)
class FinessSite:
    """One établissement géographique and the entité juridique it belongs to."""

    finess: str
    legal_entity_finess: str
    name: str
    city: str
    line: int


def line_location(number: int) -> str:
    """Where a problem of the extraction is: its line."""
    return gettext("ligne %(number)d") % {"number": number}


def structure_id_of(finess: str) -> str:
    """The Struct_IdNat of a structure identified by its FINESS number: "1" + FINESS."""
    return f"1{finess}"


def read_finess(data: bytes) -> list[FinessSite]:
    """Every site of a FINESS extraction. Raises `ValidationFailed` naming each bad line: an
    import takes the whole file or nothing, so a fault is fixed before anything changes."""
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(
            [Problem(ErrorCode.INVALID, gettext("le fichier n'est pas en Windows-1252"), f"byte {exc.start}")]
        ) from exc
    sites: list[FinessSite] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=";"), start=1):
        if not row or row[0] != "structureet":
            continue  # the extraction's first line, geolocalisation lines
        where = line_location(number)
        if len(row) < _COLUMNS:
            problems.append(Problem(ErrorCode.INVALID, gettext("ligne structureet incomplète"), where))
            continue
        site, legal_entity = row[_SITE].strip(), row[_LEGAL_ENTITY].strip()
        name = (row[_LONG_NAME] or row[_SHORT_NAME]).strip()
        problems.extend(
            Problem(
                ErrorCode.INVALID, gettext("%(value)r n'est pas un numéro FINESS") % {"value": value}, where
            )
            for value in (site, legal_entity)
            if not FINESS_NUMBER.fullmatch(value)
        )
        if not name or len(name) > _NAME_SIZE:
            problems.append(Problem(ErrorCode.INVALID, gettext("raison sociale vide ou trop longue"), where))
        if site in seen:
            problems.append(
                Problem(
                    ErrorCode.INVALID,
                    gettext("l'établissement %(finess)s figure déjà ligne %(line)d")
                    % {"finess": site, "line": seen[site]},
                    where,
                )
            )
        seen[site] = number
        city = _POSTCODE.sub("", row[_DELIVERY_LINE].strip())[:_CITY_SIZE]
        sites.append(FinessSite(site, legal_entity, name, city, number))
    if problems:
        raise ValidationFailed(problems)
    return sites


__all__ = ["FINESS_NUMBER", "FinessSite", "line_location", "read_finess", "structure_id_of"]
