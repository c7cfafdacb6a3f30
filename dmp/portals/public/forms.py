from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from dmp.support.models import Ticket


class ContactForm(forms.Form):
    requester_kind = forms.ChoiceField(label=_("Vous êtes"), choices=Ticket.Requester.choices)
    requester_name = forms.CharField(label=_("Votre nom"), max_length=200)
    requester_contact = forms.CharField(
        label=_("Votre courriel ou téléphone"), max_length=254, help_text=_("Pour vous répondre.")
    )
    category = forms.ChoiceField(label=_("Votre demande concerne"), choices=Ticket.Category.choices)
    subject = forms.CharField(label=_("Objet"), max_length=200)
    description = forms.CharField(
        label=_("Votre message"),
        widget=forms.Textarea,
        max_length=5000,
        help_text=_("N'indiquez aucune information médicale."),
    )
    # A field hidden from people by CSS: automated form fillers complete it.
    website = forms.CharField(required=False, label=_("Ne pas remplir"))
