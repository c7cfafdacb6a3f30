"""A running DMP (live server), a test PKI and homologated software for SOAP and FHIR end-to-end tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dmp.compat.services import software_register
from dmp.demo.personas import Personas
from dmp.identity.models import Certificate, HealthProfessional, Structure
from dmp.identity.pki import Issued, TestPki, certificate_register, create_test_pki
from opendmp_client.fhir import fetch_token
from opendmp_client.vihf import VihfClaims
from opendmp_client.xds import XdsClient


@dataclass
class XdsKit:
    personas: Personas
    pki: TestPki
    endpoint: str
    homologation: str
    cards: dict[str, Issued] = field(default_factory=dict)

    def card(self, professional: HealthProfessional) -> Issued:
        if professional.national_id not in self.cards:
            _, sign = self.pki.cps_card(
                national_id=professional.national_id, display_name=professional.display_name
            )
            certificate_register(sign, usage=Certificate.Usage.CPS_SIGN, professional=professional)
            self.cards[professional.national_id] = sign
        return self.cards[professional.national_id]

    def claims(
        self, professional: HealthProfessional, structure: Structure | None = None, **changes: object
    ) -> VihfClaims:
        structure = structure or professional.structures.first()
        values: dict[str, object] = {
            "subject_id": professional.national_id,
            "subject_name": professional.display_name,
            "profession": professional.profession_code,
            "specialty": professional.specialty_code,
            "structure_id": structure.id_nat if structure else "",
            "patient_ins": self.personas.alice.identifier.hl7(),
            "lps_id": "1.2.250.1.999.9.1",
            "lps_name": "OpenDMP test LPS",
            "lps_version": "1.0",
            "homologation": self.homologation,
        }
        values.update(changes)
        return VihfClaims(**values)  # type: ignore[arg-type]

    @property
    def base_url(self) -> str:
        return self.endpoint.removesuffix("/ihe/xds/")

    def token(self, professional: HealthProfessional, scope: str = "", **changes: object) -> str:
        card = self.card(professional)
        return fetch_token(
            self.claims(professional, None, **changes),
            key=card.key,
            certificate=card.certificate,
            token_url=f"{self.base_url}/fhir/token",
            scope=scope,
        )

    def client(self, professional: HealthProfessional, **changes: object) -> XdsClient:
        card = self.card(professional)
        return XdsClient(
            endpoint=self.endpoint,
            claims=self.claims(professional, None, **changes),
            key=card.key,
            certificate=card.certificate,
        )


@pytest.fixture
def xds_kit(personas: Personas, live_server: object, tmp_path: Path, settings: object) -> XdsKit:
    pki = create_test_pki()
    bundle = tmp_path / "trust.pem"
    bundle.write_bytes(pki.trust_bundle_pem())
    settings.OPENDMP_TRUST_BUNDLE = bundle  # type: ignore[attr-defined]
    _, number = software_register(vendor="OpenDMP tests", name="OpenDMP test LPS")
    return XdsKit(
        personas=personas,
        pki=pki,
        endpoint=f"{live_server.url}/ihe/xds/",  # type: ignore[attr-defined]
        homologation=number,
    )
