"""The habilitation matrix: which professions may read or write which document types.

Loaded from a CSV file the operator edits (setting OPENDMP_HABILITATION_MATRIX). Columns:
`profession,specialty,class_code,type_code,read,write`; `*` matches anything. For a given
(profession, specialty, class, type) the most specific matching row wins (specificity =
number of non-`*` columns); at equal specificity a denial wins. No matching row = denied.
"""

from __future__ import annotations

import csv
import io
import threading
from dataclasses import dataclass
from pathlib import Path

from dmp.common.errors import ErrorCode, Problem, ValidationFailed

WILDCARD = "*"
_COLUMNS = ("profession", "specialty", "class_code", "type_code", "read", "write")


@dataclass(frozen=True, slots=True)
class MatrixRule:
    profession: str
    specialty: str
    class_code: str
    type_code: str
    read: bool
    write: bool

    def matches(self, profession: str, specialty: str, class_code: str, type_code: str) -> bool:
        return all(
            pattern in (WILDCARD, value)
            for pattern, value in (
                (self.profession, profession),
                (self.specialty, specialty),
                (self.class_code, class_code),
                (self.type_code, type_code),
            )
        )

    @property
    def specificity(self) -> int:
        return sum(
            part != WILDCARD for part in (self.profession, self.specialty, self.class_code, self.type_code)
        )


class Matrix:
    """An immutable, parsed matrix with memoised lookups."""

    def __init__(self, rules: list[MatrixRule]) -> None:
        self.rules = tuple(rules)
        self._cache: dict[tuple[str, str, str, str], tuple[bool, bool]] = {}

    def _lookup(self, profession: str, specialty: str, class_code: str, type_code: str) -> tuple[bool, bool]:
        key = (profession, specialty, class_code, type_code)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        matching = [rule for rule in self.rules if rule.matches(*key)]
        result = (self._resolve(matching, "read"), self._resolve(matching, "write"))
        if len(self._cache) < 100_000:
            self._cache[key] = result
        return result

    @staticmethod
    def _resolve(rules: list[MatrixRule], field: str) -> bool:
        if not rules:
            return False
        best = max(rule.specificity for rule in rules)
        return all(getattr(rule, field) for rule in rules if rule.specificity == best)

    def can_read(self, profession: str, specialty: str, class_code: str, type_code: str) -> bool:
        return bool(profession) and self._lookup(profession, specialty, class_code, type_code)[0]

    def can_write(self, profession: str, specialty: str, class_code: str, type_code: str) -> bool:
        return bool(profession) and self._lookup(profession, specialty, class_code, type_code)[1]


def _flag(value: str, line: int, column: str) -> bool:
    cleaned = value.strip().lower()
    if cleaned in {"1", "yes", "oui", "true", "x"}:
        return True
    if cleaned in {"0", "no", "non", "false", ""}:
        return False
    raise ValidationFailed(
        [Problem(ErrorCode.INVALID, f"line {line}: {column}={value!r} is not 0/1", "matrix")]
    )


def parse_matrix(text: str) -> Matrix:
    """Parse the CSV text, rejecting the whole file on the first malformed line."""
    rows = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(rows)))
    if tuple(reader.fieldnames or ()) != _COLUMNS:
        raise ValidationFailed(
            [Problem(ErrorCode.INVALID, f"matrix header must be {','.join(_COLUMNS)}", "matrix")]
        )
    rules = []
    for number, row in enumerate(reader, start=2):
        if None in row or any(row[c] is None for c in _COLUMNS):
            raise ValidationFailed(
                [Problem(ErrorCode.INVALID, f"line {number}: wrong column count", "matrix")]
            )
        rules.append(
            MatrixRule(
                profession=row["profession"].strip(),
                specialty=row["specialty"].strip() or WILDCARD,
                class_code=row["class_code"].strip() or WILDCARD,
                type_code=row["type_code"].strip() or WILDCARD,
                read=_flag(row["read"], number, "read"),
                write=_flag(row["write"], number, "write"),
            )
        )
    return Matrix(rules)


_lock = threading.Lock()
_loaded: dict[Path, tuple[float, Matrix]] = {}


def load_matrix(path: Path) -> Matrix:
    """The matrix in `path`, re-read when the file changes (operator edits apply without restart)."""
    mtime = path.stat().st_mtime
    with _lock:
        cached = _loaded.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
    matrix = parse_matrix(path.read_text(encoding="utf-8"))
    with _lock:
        _loaded[path] = (mtime, matrix)
    return matrix
