"""The DMP record, its authorisations and the patient's personal expression space.

Rows change only through `dmp.records.services` (which audits every change).
"""

from __future__ import annotations

import uuid

from django.db import models

from dmp.access.policy import AuthorisationStatus, RecordStatus
from dmp.identity.models import Patient


class ClosureReason(models.TextChoices):
    PATIENT_REQUEST = "FERMETURE_DEMANDE_PATIENT", "À la demande du patient"
    DEATH = "FERMETURE_DECES", "Décès du patient"
    OTHER = "FERMETURE_AUTRE", "Autre motif"


class Record(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.OneToOneField(Patient, on_delete=models.PROTECT, related_name="record")
    status = models.CharField(
        max_length=8, choices=[(s.value, s.name) for s in RecordStatus], default=RecordStatus.ACTIVE
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by_id = models.CharField(max_length=64)
    created_by_name = models.CharField(max_length=200, blank=True)
    created_by_structure_id = models.CharField(max_length=40, blank=True)
    consent_declared_at = models.DateTimeField()
    consent_declared_by_id = models.CharField(max_length=64)
    opposes_break_glass = models.BooleanField(default=False)
    opposes_centre_15 = models.BooleanField(default=False)
    closed_at = models.DateTimeField(null=True, blank=True)
    closure_reason = models.CharField(max_length=32, choices=ClosureReason.choices, blank=True)
    closure_comment = models.CharField(max_length=500, blank=True)
    reactivated_at = models.DateTimeField(null=True, blank=True)
    web_account_opened = models.BooleanField(default=False)
    last_document_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # The PS home page: a structure's authorised records, those fed last first.
            models.Index(fields=["-last_document_at", "-id"], name="record_last_document_idx"),
        ]

    def __str__(self) -> str:
        return f"DMP {self.public_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status == RecordStatus.ACTIVE


class GranteeKind(models.TextChoices):
    PROFESSIONAL = "PS", "Professionnel de santé"
    STRUCTURE = "ES", "Structure"


class Authorisation(models.Model):
    """A PS's or structure's right on a record: valid, blocked (interdit) or removed.

    One row per (record, grantee); its history lives in the audit trail.
    """

    class Status(models.TextChoices):
        VALID = AuthorisationStatus.VALID.value, "Autorisé"
        BLOCKED = AuthorisationStatus.BLOCKED.value, "Interdit"
        REMOVED = AuthorisationStatus.NONE.value, "Retiré"

    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="authorisations")
    grantee_kind = models.CharField(max_length=2, choices=GranteeKind.choices)
    # PS_IdNat, Struct_IdNat, or `<Struct_IdNat>/<id>` for staff only a structure vouches for
    grantee_id = models.CharField(max_length=64)
    grantee_name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices)
    is_medecin_traitant = models.BooleanField(default=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    changed_at = models.DateTimeField()
    changed_by_id = models.CharField(max_length=64)
    changed_by_kind = models.CharField(max_length=24)
    # Last changed by a PS in the minor's secret connection: the legal representatives do not
    # see the row (nor its trace), or they would learn which PS the minor sees in secret.
    changed_in_secret = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["record", "grantee_kind", "grantee_id"], name="authorisation_unique_grantee"
            ),
        ]
        indexes = [
            # TD0.4: records on which a PS/structure is authorised, last changed first.
            models.Index(
                fields=["grantee_kind", "grantee_id", "status", "changed_at"],
                name="authorisation_grantee_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.grantee_kind}:{self.grantee_id} {self.status} on {self.record_id}"


class OrganDonation(models.TextChoices):
    NOT_STATED = "NON_RENSEIGNE", "Non renseigné"
    CONSENTS = "CONSENT", "Favorable au don d'organes"
    REFUSES = "REFUS", "Opposé au don d'organes (inscrit au registre national des refus)"


class HeirsAccess(models.TextChoices):
    NOT_STATED = "NON_RENSEIGNE", "Non renseigné"
    ALLOWED = "AUTORISE", "Mes ayants droit pourront accéder à mon dossier après mon décès"
    REFUSED = "REFUSE", "Je refuse l'accès de mes ayants droit après mon décès"


class ExpressionSpace(models.Model):
    """The patient's personal expression space (espace d'expression personnelle)."""

    record = models.OneToOneField(Record, on_delete=models.CASCADE, related_name="expression_space")
    organ_donation = models.CharField(
        max_length=16, choices=OrganDonation.choices, default=OrganDonation.NOT_STATED
    )
    organ_donation_note = models.CharField(max_length=500, blank=True)
    has_advance_directives = models.BooleanField(default=False)
    advance_directives_location = models.CharField(max_length=500, blank=True)
    heirs_access = models.CharField(
        max_length=16, choices=HeirsAccess.choices, default=HeirsAccess.NOT_STATED
    )
    personal_note = models.TextField(blank=True, max_length=5000)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Expression space of {self.record_id}"


class TrustedPerson(models.Model):
    class Role(models.TextChoices):
        TRUSTED_PERSON = "CONFIANCE", "Personne de confiance"
        EMERGENCY_CONTACT = "PREVENIR", "Personne à prévenir"

    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="trusted_persons")
    role = models.CharField(max_length=10, choices=Role.choices)
    family_name = models.CharField(max_length=100)
    given_name = models.CharField(max_length=100)
    relationship = models.CharField(max_length=100, blank=True)
    phone = models.CharField(max_length=20, blank=True)
    email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.get_role_display()}: {self.given_name} {self.family_name}"


class IssuedContextLink(models.Model):
    """A TD0.9 link handed to a PS's software, and what it opens (`dmp.records.context_links`).

    The link itself is an opaque random nonce: the facts stay here, so the patient's INS never
    travels in the URL (browser history, proxy and access logs). Only the nonce's SHA-256 is
    kept, so that reading this table opens no session.
    """

    digest = models.CharField(max_length=64, unique=True)
    professional_id = models.CharField(max_length=64)  # PS_IdNat
    structure_id = models.CharField(max_length=40, blank=True)
    patient_ins = models.CharField(max_length=22)
    ins_authority = models.CharField(max_length=32)
    page = models.CharField(max_length=16)
    authentication = models.CharField(max_length=32)  # AuthenticationMode value of the VIHF
    secret_connection = models.BooleanField(default=False)
    # The legal entity whose certificate signed the VIHF for `structure_id` (ADR 0011), or "".
    signer_structure_id = models.CharField(max_length=40, blank=True, default="")
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"TD0.9 link for {self.professional_id}, expires {self.expires_at:%Y-%m-%d %H:%M:%S}"
