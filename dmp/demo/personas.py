"""Named personas shared by the demo and the tests (healthchecks' Alice/Bob/Charlie, DMP style).

* Alice MARTIN: adult patient with an active record; Dr Bernard LEFEVRE is her médecin
  traitant DMP; Dr Claire MOREAU (cardiologist) is authorised; Dr Marc DURAND is blocked.
* Léo MARTIN: Alice's son, a minor, with a record; Alice is his legal representative.
* Chloé GIRARD: record closed at her request; she opposed break-glass access.
* Bob DUBOIS: no record yet.
* Dr Hugo PETIT: emergency physician at the CHU, not authorised (break-glass scenarios).
* Dr Samia BENALI: regulating doctor at the SAMU - Centre 15.
* Inès ROBERT (nurse), Paul GARNIER (podiatrist), Denise FAURE (pharmacist): matrix cases.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from dmp.access.actors import AccessMode, ActorKind, AuthenticationMode, Caller, Channel, Software
from dmp.access.policy import RecordStatus
from dmp.common import clock
from dmp.identity.actors import patient_actor, professional_actor, representative_actor, staff_actor
from dmp.identity.ins import InsAuthority, make_nir
from dmp.identity.models import Affiliation, HealthProfessional, LegalRepresentative, Patient, Structure
from dmp.identity.services import (
    PatientTraits,
    legal_representative_add,
    make_rpps,
    structure_attach_to_legal_entity,
)
from dmp.records.models import ClosureReason, GranteeKind, Record
from dmp.records.services import (
    AuthorisationChange,
    authorisation_change,
    authorisation_self,
    medecin_traitant_set,
    oppositions_set,
    record_close,
    record_create,
)

DEMO_SOFTWARE = Software(identifier="opendmp-demo", name="OpenDMP Demo LPS", version="1.0")


@dataclass
class Personas:
    cabinet: Structure
    chu: Structure  # a site of chu_legal_entity, as chu_south is
    chu_legal_entity: Structure
    chu_south: Structure
    samu: Structure
    pharmacy: Structure
    dr_bernard: HealthProfessional
    dr_moreau: HealthProfessional
    dr_durand: HealthProfessional
    dr_petit: HealthProfessional
    dr_benali: HealthProfessional
    nurse_robert: HealthProfessional
    podiatrist_garnier: HealthProfessional
    pharmacist_faure: HealthProfessional
    alice: Patient
    leo: Patient
    chloe: Patient
    bob_traits: PatientTraits
    alice_as_mother: LegalRepresentative

    def ps(
        self, professional: HealthProfessional, structure: Structure | None = None, **kwargs: object
    ) -> Caller:
        """A caller for `professional` in its (first) structure, CPS direct mode by default."""
        structure = structure or professional.structures.first()
        mode = kwargs.pop("mode", AccessMode.NORMAL)
        reason = str(kwargs.pop("reason", ""))
        channel = kwargs.pop("channel", Channel.XDS)
        actor = professional_actor(professional, structure, software=DEMO_SOFTWARE, **kwargs)  # type: ignore[arg-type]
        return Caller(actor=actor, mode=mode, reason=reason, channel=channel)  # type: ignore[arg-type]

    def patient(self, patient: Patient) -> Caller:
        return Caller(actor=patient_actor(patient), channel=Channel.PATIENT_PORTAL)

    def representative(self, representative: LegalRepresentative) -> Caller:
        return Caller(actor=representative_actor(representative), channel=Channel.PATIENT_PORTAL)

    @staticmethod
    def helpdesk() -> Caller:
        return Caller(
            actor=staff_actor(ActorKind.HELPDESK, "helene.support", "Hélène SUPPORT"), channel=Channel.SUPPORT
        )

    @staticmethod
    def operator() -> Caller:
        return Caller(
            actor=staff_actor(ActorKind.OPERATOR, "olivier.ops", "Olivier OPS"), channel=Channel.OPERATIONS
        )


def _structure(id_nat: str, name: str, sector: str, facility: str, *, samu: bool = False) -> Structure:
    structure, _ = Structure.objects.get_or_create(
        id_nat=id_nat,
        defaults={
            "name": name,
            "sector_code": sector,
            "facility_type_code": facility,
            "is_emergency_regulation_centre": samu,
        },
    )
    return structure


def _professional(
    seed: int,
    family: str,
    given: str,
    profession: str,
    specialty: str,
    structure: Structure,
    title: str = "",
) -> HealthProfessional:
    rpps = make_rpps(seed)
    professional, _ = HealthProfessional.objects.get_or_create(
        national_id=f"8{rpps}",
        defaults={
            "rpps": rpps,
            "title": title,
            "family_name": family,
            "given_name": given,
            "profession_code": profession,
            "specialty_code": specialty,
        },
    )
    Affiliation.objects.get_or_create(professional=professional, structure=structure)
    return professional


def traits(
    family: str, given: str, birth: dt.date, sex: str, *, department: str = "35", order: int = 1
) -> PatientTraits:
    nir = make_nir(
        sex=1 if sex == "M" else 2,
        year=birth.year,
        month=birth.month,
        department=department,
        commune=238,
        order=order,
    )
    return PatientTraits(
        ins=nir,
        ins_authority=InsAuthority.TEST_NIR.value,
        birth_family_name=family,
        given_names=given,
        birth_date=birth,
        sex=sex,  # type: ignore[arg-type]
        address_line="12 rue des Lilas",
        postal_code="35000",
        city="Rennes",
        email=f"{given.split()[0].lower()}.{family.lower()}@example.org",
        mobile_phone="+33600000000",
    )


def create_personas() -> Personas:
    cabinet = _structure("3123456789012345", "Cabinet médical des Tilleuls", "SA07", "SA07")
    chu = _structure("1350000001", "CHU de Rennes", "SA01", "SA01")
    # The hospital group's entité juridique holds the certificate that signs for its sites (ADR 0011).
    chu_legal_entity = _structure("1350000000", "CHU de Rennes - entité juridique", "SA01", "SA01")
    chu_south = _structure("1350000003", "CHU de Rennes - Hôpital Sud", "SA01", "SA01")
    for site in (chu, chu_south):
        if site.legal_entity_id is None:
            structure_attach_to_legal_entity(site, chu_legal_entity)
    samu = _structure("1350000002", "SAMU 35 - Centre 15", "SA01", "SA01", samu=True)
    pharmacy = _structure("3987654321098765", "Pharmacie du Centre", "SA33", "SA33")
    dr_bernard = _professional(1001, "Lefèvre", "Bernard", "10", "SM26", cabinet, "Dr")
    dr_moreau = _professional(1002, "Moreau", "Claire", "10", "SM04", chu, "Dr")
    dr_durand = _professional(1003, "Durand", "Marc", "10", "SM26", cabinet, "Dr")
    dr_petit = _professional(1004, "Petit", "Hugo", "10", "SM29", chu, "Dr")
    dr_benali = _professional(1005, "Benali", "Samia", "10", "SM29", samu, "Dr")
    nurse_robert = _professional(1006, "Robert", "Inès", "60", "", cabinet)
    podiatrist_garnier = _professional(1007, "Garnier", "Paul", "80", "", cabinet)
    pharmacist_faure = _professional(1008, "Faure", "Denise", "21", "", pharmacy)

    def as_ps(professional: HealthProfessional, structure: Structure) -> Caller:
        return Caller(
            actor=professional_actor(professional, structure, software=DEMO_SOFTWARE), channel=Channel.XDS
        )

    bernard = as_ps(dr_bernard, cabinet)
    alice_traits = traits("Martin", "Alice Marie", dt.date(1985, 3, 14), "F", order=101)
    today = clock.today()
    leo_traits = traits("Martin", "Léo", today.replace(year=today.year - 9, day=1), "M", order=102)
    chloe_traits = traits("Girard", "Chloé", dt.date(1972, 11, 2), "F", order=103)
    bob_traits = traits("Dubois", "Bob", dt.date(1990, 6, 21), "M", order=104)

    alice_record = _existing_or_created(bernard, alice_traits)
    leo_record = _existing_or_created(bernard, leo_traits)
    chloe_record = _existing_or_created(bernard, chloe_traits, opposes_break_glass=True)
    alice, leo, chloe = alice_record.patient, leo_record.patient, chloe_record.patient

    alice_caller = Caller(actor=patient_actor(alice), channel=Channel.PATIENT_PORTAL)
    medecin_traitant_set(caller=bernard, ins=alice.identifier, declare=True)
    authorisation_self(caller=as_ps(dr_moreau, chu), ins=alice.identifier, grant=True)
    authorisation_change(
        caller=alice_caller,
        record=alice_record,
        grantee_kind=GranteeKind.PROFESSIONAL,
        grantee_id=dr_durand.national_id,
        grantee_name=dr_durand.display_name,
        change=AuthorisationChange.BLOCK,
    )
    authorisation_self(caller=as_ps(nurse_robert, cabinet), ins=alice.identifier, grant=True)
    authorisation_self(caller=as_ps(podiatrist_garnier, cabinet), ins=alice.identifier, grant=True)
    authorisation_self(caller=as_ps(pharmacist_faure, pharmacy), ins=alice.identifier, grant=True)
    mother = LegalRepresentative.objects.filter(
        patient=leo, given_name="Alice"
    ).first() or legal_representative_add(
        leo, family_name="Martin", given_name="Alice", relationship=LegalRepresentative.Relationship.MOTHER
    )
    if chloe_record.status == RecordStatus.ACTIVE:
        oppositions_set(
            caller=Caller(actor=patient_actor(chloe), channel=Channel.PATIENT_PORTAL),
            record=chloe_record,
            break_glass=True,
            centre_15=False,
        )
        record_close(
            caller=Caller(actor=patient_actor(chloe), channel=Channel.PATIENT_PORTAL),
            record=chloe_record,
            reason=ClosureReason.PATIENT_REQUEST,
            comment="Demande de la patiente",
        )
    return Personas(
        cabinet=cabinet,
        chu=chu,
        chu_legal_entity=chu_legal_entity,
        chu_south=chu_south,
        samu=samu,
        pharmacy=pharmacy,
        dr_bernard=dr_bernard,
        dr_moreau=dr_moreau,
        dr_durand=dr_durand,
        dr_petit=dr_petit,
        dr_benali=dr_benali,
        nurse_robert=nurse_robert,
        podiatrist_garnier=podiatrist_garnier,
        pharmacist_faure=pharmacist_faure,
        alice=alice,
        leo=leo,
        chloe=chloe,
        bob_traits=bob_traits,
        alice_as_mother=mother,
    )


def _existing_or_created(caller: Caller, patient_traits: PatientTraits, **oppositions: bool) -> Record:
    existing = Record.objects.filter(
        patient__ins=patient_traits.ins, patient__ins_authority=patient_traits.ins_authority
    ).first()
    if existing is not None:
        return existing
    return record_create(caller=caller, traits=patient_traits, consent=True, **oppositions)


__all__ = ["AuthenticationMode", "Personas", "create_personas", "traits"]
