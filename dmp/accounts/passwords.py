"""Password rules for patient accounts (CNIL deliberation 2022-100, ANSSI).

* at least 12 characters mixing upper case, lower case, digits and special characters, or
  at least 14 characters mixing three of those classes;
* not in a local list of breached / common passwords (no network call): our list, the
  operator's list (`OPENDMP_BREACHED_PASSWORDS_FILE`, plain text or .gz) and Django's;
* not containing the chosen identifier.
Hashing is Django's (`PASSWORD_HASHERS`, PBKDF2 by default, Argon2 if the operator adds it).
"""

from __future__ import annotations

import gzip
import re
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.contrib.auth.password_validation import CommonPasswordValidator
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

MIN_LENGTH = 12
LONG_LENGTH = 14
DEFAULT_LIST = Path(__file__).resolve().parent / "data" / "breached-passwords.txt"
_TRAILING = re.compile(r"[\W\d_]+$")


def _read_list(path: Path) -> frozenset[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    return frozenset(
        line.strip().lower() for line in lines if line.strip() and not line.lstrip().startswith("#")
    )


@lru_cache(maxsize=4)
def breached_passwords(extra: str = "") -> frozenset[str]:
    words = _read_list(DEFAULT_LIST)
    if extra:
        words |= _read_list(Path(extra))
    return words


def _BREACHED() -> str:  # noqa: N802 - reads as a message constant
    return _("Ce mot de passe figure dans une liste de mots de passe compromis ou trop courants.")


def _classes(password: str) -> int:
    return sum(
        [
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        ]
    )


def password_problems(password: str, *, identifier: str = "") -> list[str]:
    """Every reason `password` is refused (empty when it is acceptable), in the active language."""
    problems: list[str] = []
    classes = _classes(password)
    if len(password) < MIN_LENGTH:
        problems.append(
            _("Le mot de passe doit contenir au moins %(count)d caractères.") % {"count": MIN_LENGTH}
        )
    elif not (classes == 4 or (len(password) >= LONG_LENGTH and classes >= 3)):
        problems.append(
            _(
                "Le mot de passe doit mêler majuscules, minuscules, chiffres et caractères spéciaux "
                "(ou au moins trois de ces types avec %(count)d caractères ou plus)."
            )
            % {"count": LONG_LENGTH}
        )
    lowered = password.lower()
    words = breached_passwords(str(getattr(settings, "OPENDMP_BREACHED_PASSWORDS_FILE", "") or ""))
    if lowered in words or _TRAILING.sub("", lowered) in words:
        problems.append(_BREACHED())
    else:
        try:
            CommonPasswordValidator().validate(password)
        except ValidationError:
            problems.append(_BREACHED())
    if identifier and len(identifier) >= 4 and identifier.lower() in lowered:
        problems.append(_("Le mot de passe ne doit pas contenir l'identifiant."))
    return problems
