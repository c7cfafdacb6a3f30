"""The deployment's policy inputs (matrix file), read from settings."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from dmp.access.matrix import Matrix, load_matrix
from dmp.access.policy import AccessRequest, Decision, decide


def current_matrix() -> Matrix:
    return load_matrix(Path(settings.OPENDMP_HABILITATION_MATRIX))


def decide_now(request: AccessRequest) -> Decision:
    """`decide()` with the deployment's habilitation matrix."""
    return decide(request, current_matrix())
