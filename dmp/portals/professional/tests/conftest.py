"""Helpers for the PS portal tests: log a persona in through the demo card page, publish documents."""

from __future__ import annotations

import pytest
from django.test import Client

from dmp.demo.personas import Personas
from dmp.documents.builders import DocumentDraft, author_for, submission_for
from dmp.documents.models import DocumentEntry
from dmp.documents.services import submission_register
from dmp.identity.models import HealthProfessional


@pytest.fixture
def demo(settings: object) -> None:
    settings.DEMO = True  # type: ignore[attr-defined]


def login_as(client: Client, professional: HealthProfessional) -> Client:
    response = client.post("/pro/connexion/demo", {"professional": professional.national_id})
    assert response.status_code == 302, response.content
    return client


@pytest.fixture
def login(demo: None):
    def _login(professional: HealthProfessional, client: Client | None = None) -> Client:
        return login_as(client or Client(), professional)

    return _login


def publish(
    personas: Personas,
    professional: HealthProfessional,
    drafts: list[DocumentDraft],
    *,
    patient=None,
) -> list[DocumentEntry]:
    caller = personas.ps(professional)
    structure = professional.structures.first()
    author = author_for(
        person_id=professional.national_id,
        family_name=professional.family_name,
        given_name=professional.given_name,
        profession_code=professional.profession_code,
        specialty_code=professional.specialty_code,
        structure_id=structure.id_nat if structure else "",
        structure_name=structure.name if structure else "",
    )
    registered = submission_register(
        caller=caller,
        submission=submission_for(ins=(patient or personas.alice).identifier, author=author, drafts=drafts),
    )
    return registered.documents
