"""Identities: patients (INS), health professionals (RPPS), structures (FINESS), certificates."""

from __future__ import annotations

import datetime as dt
import uuid

from django.db import models

from dmp.identity.ins import Ins, InsAuthority


class Sex(models.TextChoices):
    """TRE_R303 HL7 administrative gender."""

    MALE = "M", "Masculin"
    FEMALE = "F", "Féminin"
    UNKNOWN = "U", "Inconnu"


class Patient(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    ins = models.CharField(max_length=22)
    ins_authority = models.CharField(max_length=32, choices=[(a.value, a.name) for a in InsAuthority])
    birth_family_name = models.CharField(max_length=100)  # nom de naissance
    used_family_name = models.CharField(max_length=100, blank=True)  # nom utilisé
    given_names = models.CharField(max_length=200)  # prénoms de naissance, space separated
    used_given_name = models.CharField(max_length=100, blank=True)  # prénom utilisé
    birth_date = models.DateField()
    sex = models.CharField(max_length=1, choices=Sex.choices)
    birth_place_code = models.CharField(max_length=5, blank=True)  # INSEE COG
    address_line = models.CharField(max_length=200, blank=True)
    postal_code = models.CharField(max_length=10, blank=True)
    city = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=2, default="FR")
    email = models.EmailField(blank=True)
    mobile_phone = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["ins", "ins_authority"], name="patient_unique_ins"),
        ]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.ins})"

    @property
    def identifier(self) -> Ins:
        return Ins(self.ins, InsAuthority(self.ins_authority))

    @property
    def first_given_name(self) -> str:
        return self.given_names.split(" ")[0] if self.given_names else ""

    @property
    def display_name(self) -> str:
        family = self.used_family_name or self.birth_family_name
        given = self.used_given_name or self.first_given_name
        return f"{family.upper()} {given}"

    def age_on(self, day: dt.date) -> int:
        years = day.year - self.birth_date.year
        if (day.month, day.day) < (self.birth_date.month, self.birth_date.day):
            years -= 1
        return years


class LegalRepresentative(models.Model):
    """A parent or guardian who may act on a minor's record."""

    class Relationship(models.TextChoices):
        MOTHER = "MTH", "Mère"
        FATHER = "FTH", "Père"
        GUARDIAN = "GUARD", "Tuteur"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="legal_representatives")
    family_name = models.CharField(max_length=100)
    given_name = models.CharField(max_length=100)
    relationship = models.CharField(max_length=8, choices=Relationship.choices)
    email = models.EmailField(blank=True)
    mobile_phone = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.family_name.upper()} {self.given_name} ({self.get_relationship_display()})"

    @property
    def person_id(self) -> str:
        """Identifier used in actors and audit: stable and not the INS of the child."""
        return f"RL-{self.public_id}"


class Structure(models.Model):
    """A health structure (ES, cabinet, SAMU...) identified by its Struct_IdNat."""

    id_nat = models.CharField(max_length=40, unique=True)  # "1" + FINESS, "3" + SIRET, ...
    name = models.CharField(max_length=200)
    finess = models.CharField(max_length=9, blank=True)
    sector_code = models.CharField(max_length=8, blank=True)  # TRE_R02 SecteurActivite (SAxx)
    facility_type_code = models.CharField(max_length=16, blank=True)  # XDS healthcareFacilityTypeCode
    is_emergency_regulation_centre = models.BooleanField(default=False)  # SAMU - Centre 15
    city = models.CharField(max_length=100, blank=True)
    # The entité juridique (FINESS juridique) this établissement géographique (site) belongs to:
    # its certificate signs the VIHFs of the site's staff (ADR 0011). One level: a legal entity
    # is no site.
    legal_entity = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="sites"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.id_nat})"


class HealthProfessional(models.Model):
    """A person on the professional side: PS (RPPS) or non-PS staff of a structure."""

    national_id = models.CharField(max_length=20, unique=True)  # PS_IdNat ("8" + RPPS)
    rpps = models.CharField(max_length=11, blank=True, db_index=True)
    title = models.CharField(max_length=10, blank=True)  # "Dr", "Pr"...
    family_name = models.CharField(max_length=100)
    given_name = models.CharField(max_length=100)
    profession_code = models.CharField(max_length=8)  # TRE_G15 (or non-PS code)
    specialty_code = models.CharField(max_length=16, blank=True)  # TRE_R38 / R01
    email = models.EmailField(blank=True)
    structures = models.ManyToManyField(Structure, through="Affiliation", related_name="professionals")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        prefix = f"{self.title} " if self.title else ""
        return f"{prefix}{self.given_name} {self.family_name.upper()}"


class Affiliation(models.Model):
    professional = models.ForeignKey(HealthProfessional, on_delete=models.CASCADE)
    structure = models.ForeignKey(Structure, on_delete=models.CASCADE)
    role_code = models.CharField(max_length=16, blank=True)  # TRE_R85 role, if any

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["professional", "structure"], name="affiliation_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.professional} @ {self.structure}"


class Certificate(models.Model):
    """An X.509 certificate known to the DMP (CPS card, structure, server), by fingerprint."""

    class Usage(models.TextChoices):
        CPS_AUTH = "CPS_AUTH", "CPS authentification"
        CPS_SIGN = "CPS_SIGN", "CPS signature"
        ORG_AUTH_CLI = "ORG_AUTH_CLI", "Structure authentification client"
        ORG_SIGN = "ORG_SIGN", "Structure signature"
        SERVER = "SERVER", "Serveur"

    fingerprint_sha256 = models.CharField(max_length=64, unique=True)
    serial_number = models.CharField(max_length=64)
    subject_dn = models.CharField(max_length=500)
    issuer_dn = models.CharField(max_length=500)
    usage = models.CharField(max_length=16, choices=Usage.choices)
    pem = models.TextField()
    professional = models.ForeignKey(
        HealthProfessional, null=True, blank=True, on_delete=models.CASCADE, related_name="certificates"
    )
    structure = models.ForeignKey(
        Structure, null=True, blank=True, on_delete=models.CASCADE, related_name="certificates"
    )
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.subject_dn} [{self.usage}]"
