from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from dmp.common.xml import NOT_XML_CHARACTER
from dmp.records.models import GranteeKind, HeirsAccess, OrganDonation, TrustedPerson
from dmp.records.services import AuthorisationChange

from .notes import PATIENT_TYPES


class ActivationForm(forms.Form):
    code = forms.CharField(
        label=_("Code d'activation"),
        max_length=20,
        help_text=_("Remis par votre professionnel de santé, sous la forme XXXX-XXXX-XXXX."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters"}),
    )
    identifier = forms.CharField(
        label=_("Identifiant choisi"),
        max_length=64,
        help_text=_("De 6 à 64 caractères : lettres minuscules, chiffres, point, tiret."),
        widget=forms.TextInput(attrs={"autocomplete": "username"}),
    )
    password = forms.CharField(
        label=_("Mot de passe"),
        strip=False,
        help_text=_(
            "Au moins 12 caractères avec majuscules, minuscules, chiffres et caractères spéciaux "
            "(ou 14 caractères avec trois de ces types)."
        ),
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password_again = forms.CharField(
        label=_("Confirmez le mot de passe"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("password") != data.get("password_again"):
            self.add_error("password_again", _("Les deux mots de passe ne sont pas identiques."))
        return data


class LoginForm(forms.Form):
    identifier = forms.CharField(
        # A login name here, where other pages' "Identifiant" is a national identifier.
        label=pgettext_lazy("login", "Identifiant"),
        max_length=64,
        widget=forms.TextInput(attrs={"autocomplete": "username"}),
    )
    password = forms.CharField(
        label=_("Mot de passe"),
        strip=False,
        max_length=256,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    secret_connection = forms.BooleanField(
        label=_("Connexion secrète (mineurs) : ce que j'ajoute sera caché à mes représentants légaux"),
        required=False,
    )


class CodeForm(forms.Form):
    code = forms.CharField(
        label=_("Code de connexion à 6 chiffres"),
        min_length=6,
        max_length=6,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class MaskForm(forms.Form):
    entry_uuid = forms.CharField(max_length=64, widget=forms.HiddenInput)
    masked = forms.BooleanField(required=False, widget=forms.HiddenInput)


class DocumentDeleteForm(forms.Form):
    entry_uuid = forms.CharField(max_length=64, widget=forms.HiddenInput)


def _xml_text(value: str) -> None:
    """A note becomes a CDA document: characters XML cannot hold are refused here (they were a
    server error when the document was built)."""
    if NOT_XML_CHARACTER.search(value):
        raise forms.ValidationError(_("Le texte contient un caractère non autorisé."))


class NoteForm(forms.Form):
    type_code = forms.ChoiceField(label=_("Type de document"), choices=list(PATIENT_TYPES.items()))
    title = forms.CharField(label=_("Titre"), max_length=200, validators=[_xml_text])
    text = forms.CharField(
        label=_("Texte"), max_length=20000, widget=forms.Textarea(attrs={"rows": 8}), validators=[_xml_text]
    )


class AuthorisationForm(forms.Form):
    grantee_kind = forms.ChoiceField(label=_("Qui"), choices=GranteeKind.choices)
    grantee_id = forms.CharField(
        label=_("Identifiant national"),
        max_length=40,
        help_text=_("RPPS / ADELI du professionnel, ou identifiant de la structure (FINESS, SIRET)."),
    )
    grantee_name = forms.CharField(label=_("Nom (facultatif)"), max_length=200, required=False)
    change = forms.ChoiceField(
        label=_("Action"),
        choices=[
            (AuthorisationChange.GRANT.value, _("Autoriser")),
            (AuthorisationChange.BLOCK.value, _("Bloquer (interdire tout accès)")),
            (AuthorisationChange.REMOVE.value, _("Retirer l'autorisation")),
        ],
    )


class OppositionsForm(forms.Form):
    break_glass = forms.BooleanField(
        label=_("Je m'oppose à l'accès en urgence « bris de glace » par un professionnel non autorisé"),
        required=False,
    )
    centre_15 = forms.BooleanField(
        label=_("Je m'oppose à l'accès par le médecin régulateur du SAMU – Centre 15"), required=False
    )


class ExpressionForm(forms.Form):
    organ_donation = forms.ChoiceField(label=_("Don d'organes"), choices=OrganDonation.choices)
    organ_donation_note = forms.CharField(label=_("Précisions"), max_length=500, required=False)
    has_advance_directives = forms.BooleanField(
        label=_("J'ai rédigé des directives anticipées"), required=False
    )
    advance_directives_location = forms.CharField(
        label=_("Où se trouvent-elles ?"), max_length=500, required=False
    )
    heirs_access = forms.ChoiceField(
        label=_("Accès de mes ayants droit après mon décès"), choices=HeirsAccess.choices
    )
    personal_note = forms.CharField(
        label=_("Note personnelle"), max_length=5000, required=False, widget=forms.Textarea(attrs={"rows": 5})
    )


class TrustedPersonForm(forms.Form):
    role = forms.ChoiceField(label=_("Rôle"), choices=TrustedPerson.Role.choices)
    family_name = forms.CharField(label=_("Nom"), max_length=100)
    given_name = forms.CharField(label=_("Prénom"), max_length=100)
    relationship = forms.CharField(label=_("Lien"), max_length=100, required=False)
    phone = forms.CharField(label=_("Téléphone"), max_length=20, required=False)
    email = forms.EmailField(label=_("Courriel"), required=False)


def _password_confirmation() -> forms.CharField:
    return forms.CharField(
        label=_("Mot de passe (confirmation)"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class CloseForm(forms.Form):
    confirm = forms.BooleanField(
        label=_(
            "Je demande la fermeture de mon DMP. Je comprends que plus aucun professionnel ne pourra le "
            "consulter ni l'alimenter, et que son contenu est conservé."
        )
    )
    password = _password_confirmation()
    comment = forms.CharField(label=_("Commentaire (facultatif)"), max_length=500, required=False)


class TotpForm(forms.Form):
    code = forms.CharField(label=_("Code affiché par l'application"), min_length=6, max_length=6)
    password = _password_confirmation()


class TotpDisableForm(forms.Form):
    password = _password_confirmation()
