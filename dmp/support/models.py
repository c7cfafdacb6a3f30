"""SI Support: helpdesk tickets entered by hotliners or by users through the public form."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Ticket(models.Model):
    class Channel(models.TextChoices):
        PHONE = "PHONE", "Téléphone"
        EMAIL = "EMAIL", "Courriel"
        WEB = "WEB", "Formulaire web"

    class Requester(models.TextChoices):
        PATIENT = "PATIENT", "Patient"
        PROFESSIONAL = "PS", "Professionnel de santé"
        STRUCTURE = "ES", "Établissement / structure"
        VENDOR = "VENDOR", "Éditeur de logiciel"
        OTHER = "OTHER", "Autre"

    class Category(models.TextChoices):
        INFORMATION = "INFO", "Demande d'information"
        USAGE = "USAGE", "Difficulté d'usage"
        ACCESS = "ACCESS", "Connexion et accès"
        MALFUNCTION = "INCIDENT", "Dysfonctionnement"
        COMPATIBILITY = "COMPAT", "DMP-compatibilité (éditeurs)"
        PRIVACY = "PRIVACY", "Droits du patient, données personnelles"

    class Priority(models.TextChoices):
        LOW = "P4", "Basse"
        NORMAL = "P3", "Normale"
        HIGH = "P2", "Haute"
        CRITICAL = "P1", "Critique"

    class Status(models.TextChoices):
        NEW = "NEW", "Nouveau"
        OPEN = "OPEN", "En cours"
        WAITING = "WAITING", "En attente du demandeur"
        RESOLVED = "RESOLVED", "Résolu"
        CLOSED = "CLOSED", "Clos"

    reference = models.CharField(max_length=24, unique=True)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    requester_kind = models.CharField(max_length=8, choices=Requester.choices)
    requester_name = models.CharField(max_length=200)
    requester_contact = models.CharField(max_length=254)
    category = models.CharField(max_length=8, choices=Category.choices)
    priority = models.CharField(max_length=2, choices=Priority.choices, default=Priority.NORMAL)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.NEW)
    subject = models.CharField(max_length=200)
    description = models.TextField(max_length=10000)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets"
    )
    created_at = models.DateTimeField()
    first_response_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["status", "-created_at"], name="ticket_status_idx"),
            models.Index(fields=["created_at"], name="ticket_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.subject}"

    @property
    def is_open(self) -> bool:
        return self.status not in {self.Status.RESOLVED, self.Status.CLOSED}


class TicketEvent(models.Model):
    """The ticket's history: comments and status changes, append-only."""

    class Kind(models.TextChoices):
        CREATED = "CREATED", "Création"
        COMMENT = "COMMENT", "Commentaire"
        STATUS = "STATUS", "Changement de statut"
        ASSIGNED = "ASSIGNED", "Affectation"

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    author = models.CharField(max_length=150)
    text = models.TextField(blank=True, max_length=10000)
    from_status = models.CharField(max_length=8, blank=True)
    to_status = models.CharField(max_length=8, blank=True)
    is_public = models.BooleanField(default=False)  # visible to the requester
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.ticket_id} {self.kind}"


class TicketSequence(models.Model):
    """Per-year counter for human-readable references (SUP-2026-000123), locked while used."""

    year = models.PositiveSmallIntegerField(primary_key=True)
    last = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.year}: {self.last}"
