"""The habilitation matrix file: an operator's edit applies to the next decision, without a
restart; a malformed edit is refused whole."""

from __future__ import annotations

import os

import pytest
from django.test import override_settings

from dmp.access.config import current_matrix
from dmp.common.errors import ValidationFailed

HEADER = "profession,specialty,class_code,type_code,read,write\n"


def _write(path, rows: str, mtime: int) -> None:
    path.write_text(HEADER + rows, encoding="utf-8")
    os.utime(path, (mtime, mtime))  # a distinct modification time, however fast the edit


def test_an_edit_of_the_matrix_applies_to_the_next_decision(tmp_path):
    path = tmp_path / "matrix.csv"
    _write(path, "60,,,11488-4,1,0\n", 1_000_000)
    with override_settings(OPENDMP_HABILITATION_MATRIX=str(path)):
        assert current_matrix().can_read("60", "", "", "11488-4")
        _write(path, "60,,,11488-4,0,0\n", 1_000_060)
        assert not current_matrix().can_read("60", "", "", "11488-4")
        _write(path, "60,,,11488-4,maybe,0\n", 1_000_120)
        with pytest.raises(ValidationFailed):
            current_matrix()
    other = tmp_path / "other.csv"
    _write(other, "70,,,11488-4,1,0\n", 1_000_000)
    with override_settings(OPENDMP_HABILITATION_MATRIX=str(other)):
        assert current_matrix().can_read("70", "", "", "11488-4")
        assert not current_matrix().can_read("60", "", "", "11488-4")
