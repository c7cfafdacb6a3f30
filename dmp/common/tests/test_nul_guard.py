"""Requests carrying NUL are refused before any view (PostgreSQL text cannot store NUL)."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "/pro/dossier/00000000-0000-4000-8000-000000000000/document/1.2%00/",
        "/patient/connexion/?next=/patient/%00",
        "/?q=%00",
        "/support/?x%00=1",
    ],
)
def test_nul_in_path_or_query_is_a_400_with_security_headers(url):
    response = Client().get(url)
    assert response.status_code == 400
    assert "default-src 'self'" in response["Content-Security-Policy"]
