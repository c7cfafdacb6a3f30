"""Pytest fixtures: the named personas (see dmp.demo.personas) and a blob store per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings
from django.utils import translation

from dmp.demo.personas import Personas, create_personas
from dmp.documents.blobstore import default_blob_store


@pytest.fixture(autouse=True)
def blob_dir(tmp_path: Path) -> Iterator[Path]:
    """Every test writes document bytes to its own temporary blob store."""
    directory = tmp_path / "blobs"
    with override_settings(OPENDMP_BLOB_DIR=directory, OPENDMP_BLOB_BACKEND="filesystem"):
        default_blob_store.cache_clear()
        yield directory
    default_blob_store.cache_clear()


@pytest.fixture(autouse=True)
def default_language() -> Iterator[None]:
    """A request leaves its language active in the thread (Django activates one per request and
    never resets it): the next test must not inherit an English page's language."""
    yield
    translation.deactivate()


@pytest.fixture
def personas(db: None) -> Personas:
    return create_personas()
