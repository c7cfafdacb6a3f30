from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from dmp.support.models import Ticket


class TicketForm(forms.Form):
    channel = forms.ChoiceField(label=_("Canal"), choices=Ticket.Channel.choices)
    requester_kind = forms.ChoiceField(label=_("Demandeur"), choices=Ticket.Requester.choices)
    requester_name = forms.CharField(label=_("Nom du demandeur"), max_length=200)
    requester_contact = forms.CharField(label=_("Courriel ou téléphone"), max_length=254)
    category = forms.ChoiceField(label=_("Catégorie"), choices=Ticket.Category.choices)
    priority = forms.ChoiceField(
        label=_("Priorité"), choices=Ticket.Priority.choices, initial=Ticket.Priority.NORMAL
    )
    subject = forms.CharField(label=_("Objet"), max_length=200)
    description = forms.CharField(label=_("Description"), widget=forms.Textarea, max_length=10000)


class CommentForm(forms.Form):
    text = forms.CharField(label=_("Commentaire"), widget=forms.Textarea, max_length=10000)
    public = forms.BooleanField(label=_("Réponse visible du demandeur"), required=False)


class StatusForm(forms.Form):
    status = forms.ChoiceField(label=_("Nouveau statut"), choices=Ticket.Status.choices)
    comment = forms.CharField(label=_("Commentaire"), required=False, widget=forms.Textarea, max_length=10000)


class RecordLookupForm(forms.Form):
    ins = forms.CharField(label=_("INS du patient"), max_length=22)
    authority = forms.ChoiceField(
        label=_("Type d'INS"),
        choices=[
            ("1.2.250.1.213.1.4.8", "INS-NIR"),
            ("1.2.250.1.213.1.4.9", "INS-NIA"),
            ("1.2.250.1.213.1.4.10", "INS-NIR de test"),
            ("1.2.250.1.213.1.4.11", "INS-NIA de test"),
            ("1.2.250.1.213.1.4.2", "INS-C"),
        ],
    )
