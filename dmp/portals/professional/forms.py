"""Forms of the PS portal: they parse input; the services decide and validate the rest."""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _

from dmp.access.actors import AccessMode
from dmp.access.policy import DocumentStatus
from dmp.accounts.services import otp_destination_checked
from dmp.identity.ins import Ins, InsAuthority, InvalidIns, parse_ins
from dmp.records.models import GranteeKind
from dmp.records.services import AuthorisationChange
from dmp.terminology import value_set

INS_AUTHORITIES: Final = [
    (InsAuthority.NIR.value, _("NIR (INS)")),
    (InsAuthority.NIA.value, _("NIA (INS)")),
    (InsAuthority.TEST_NIR.value, _("NIR de test")),
    (InsAuthority.TEST_NIA.value, _("NIA de test")),
    (InsAuthority.INS_C.value, _("INS-C (2010)")),
]
# The document types offered in the portal's forms (the matrix decides what each PS may do).
TYPE_CODES: Final = (
    "11488-4",
    "34133-9",
    "11490-0",
    "60591-5",
    "57833-6",
    "57832-8",
    "11502-2",
    "18748-4",
    "75492-9",
)
STATUS_FILTERS: Final = {
    "current": DocumentStatus.APPROVED,
    "archived": DocumentStatus.ARCHIVED,
    "deprecated": DocumentStatus.DEPRECATED,
}
VISIBILITY_CODES: Final = {
    "normal": (),
    "masked": ("MASQUE_PS",),
    "invisible_patient": ("INVISIBLE_PATIENT",),
    "invisible_representatives": ("INVISIBLE_REPRESENTANTS_LEGAUX",),
}


def type_choices() -> list[tuple[str, str]]:
    codes = value_set("type_code")
    return [(code, found.display if (found := codes.get(code)) else code) for code in TYPE_CODES]


def class_choices() -> list[tuple[str, str]]:
    return [(c.code, c.display) for c in value_set("class_code").codes]


class InsForm(forms.Form):
    ins = forms.CharField(label=_("INS du patient"), max_length=30)
    authority = forms.ChoiceField(label=_("Type d'identifiant"), choices=INS_AUTHORITIES)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "ins" in data and "authority" in data:
            try:
                data["identifier"] = parse_ins(data["ins"], data["authority"])
            except InvalidIns as exc:
                self.add_error("ins", _("INS invalide (%(detail)s).") % {"detail": exc.message})
        return data

    @property
    def identifier(self) -> Ins:
        value: Ins = self.cleaned_data["identifier"]
        return value


class RecordCreateForm(InsForm):
    birth_family_name = forms.CharField(label=_("Nom de naissance"), max_length=100)
    used_family_name = forms.CharField(label=_("Nom utilisé"), max_length=100, required=False)
    given_names = forms.CharField(label=_("Prénoms de naissance"), max_length=200)
    birth_date = forms.DateField(label=_("Date de naissance"), widget=forms.DateInput(attrs={"type": "date"}))
    sex = forms.ChoiceField(
        label=_("Sexe"), choices=[("F", _("Féminin")), ("M", _("Masculin")), ("U", _("Inconnu"))]
    )
    consent = forms.BooleanField(
        label=_("Le patient a été informé et consent à la création de son DMP"), required=True
    )
    opposes_break_glass = forms.BooleanField(
        label=_("Le patient s'oppose à l'accès en mode bris de glace"), required=False
    )
    opposes_centre_15 = forms.BooleanField(
        label=_("Le patient s'oppose à l'accès par le médecin régulateur du Centre 15"), required=False
    )


class DocumentFilterForm(forms.Form):
    type_code = forms.ChoiceField(label=_("Type"), required=False)
    class_code = forms.ChoiceField(label=_("Classe"), required=False)
    date_from = forms.DateField(
        label=_("Créé à partir du"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label=_("Créé jusqu'au"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    status = forms.MultipleChoiceField(
        label=_("Statut"),
        required=False,
        choices=[("current", _("Courant")), ("archived", _("Archivé")), ("deprecated", _("Remplacé"))],
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["type_code"].choices = [("", _("Tous")), *type_choices()]  # type: ignore[attr-defined]
        self.fields["class_code"].choices = [("", _("Toutes")), *class_choices()]  # type: ignore[attr-defined]

    def statuses(self) -> frozenset[DocumentStatus]:
        chosen = self.cleaned_data.get("status") or ["current"]
        return frozenset(STATUS_FILTERS[s] for s in chosen)

    @staticmethod
    def _moment(day: dt.date | None, *, next_day: bool = False) -> dt.datetime | None:
        if day is None:
            return None
        if next_day:
            day = day + dt.timedelta(days=1)
        return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)

    def creation_from(self) -> dt.datetime | None:
        return self._moment(self.cleaned_data.get("date_from"))

    def creation_to(self) -> dt.datetime | None:
        return self._moment(self.cleaned_data.get("date_to"), next_day=True)


class EmergencyForm(forms.Form):
    mode = forms.ChoiceField(
        label=_("Mode d'accès"),
        choices=[
            (AccessMode.BREAK_GLASS.value, _("Bris de glace (urgence)")),
            (AccessMode.CENTRE_15.value, _("Régulation Centre 15 (SAMU)")),
        ],
    )
    reason = forms.CharField(
        label=_("Motif (obligatoire)"), max_length=500, widget=forms.Textarea(attrs={"rows": 3})
    )

    def clean_reason(self) -> str:
        reason = str(self.cleaned_data["reason"]).strip()
        if not reason:
            raise forms.ValidationError(_("Le motif est obligatoire."))
        return reason


class UploadForm(forms.Form):
    file = forms.FileField(label=_("Fichier (PDF, ou document CDA R2 en XML)"))
    type_code = forms.ChoiceField(label=_("Type de document (pour un PDF)"))
    title = forms.CharField(label=_("Titre (pour un PDF)"), max_length=200, required=False)
    visibility = forms.ChoiceField(
        label=_("Visibilité"),
        widget=forms.RadioSelect,
        initial="normal",
        choices=[
            ("normal", _("Visible par tous les professionnels autorisés et le patient")),
            ("masked", _("Masqué aux professionnels (sauf auteur et médecin traitant)")),
            ("invisible_patient", _("Invisible au patient (en attente de consultation d'annonce)")),
            ("invisible_representatives", _("Invisible aux représentants légaux")),
        ],
    )
    replaces = forms.CharField(required=False, widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["type_code"].choices = type_choices()  # type: ignore[attr-defined]

    def clean_file(self) -> UploadedFile[bytes]:
        # Before the file is read: a PDF is held several times over while it is wrapped into a
        # CDA (bytes, base64, the tree), so a file over the limit is refused on its size alone.
        file: UploadedFile[bytes] = self.cleaned_data["file"]
        limit = settings.OPENDMP_MAX_DOCUMENT_BYTES
        size = file.size or 0
        if size > limit:
            raise forms.ValidationError(
                _("Le fichier (%(size)s) dépasse la taille maximale d'un document du DMP (%(limit)s).")
                % {"size": filesizeformat(size), "limit": filesizeformat(limit)}
            )
        return file


class DocumentActionForm(forms.Form):
    action = forms.ChoiceField(
        choices=[
            ("archive", "archive"),
            ("unarchive", "unarchive"),
            ("delete", "delete"),
            ("mask", "mask"),
            ("unmask", "unmask"),
            ("show_patient", "show_patient"),
            ("hide_patient", "hide_patient"),
        ]
    )
    entry_uuid = forms.CharField(max_length=64)


class AuthorisationForm(forms.Form):
    grantee_kind = forms.ChoiceField(
        label=_("Bénéficiaire"),
        choices=[
            (GranteeKind.PROFESSIONAL.value, _("Professionnel")),
            (GranteeKind.STRUCTURE.value, _("Structure")),
        ],
    )
    grantee_id = forms.CharField(label=_("Identifiant national"), max_length=40)
    change = forms.ChoiceField(
        label=_("Modification"),
        choices=[
            (AuthorisationChange.GRANT.value, _("Autoriser")),
            (AuthorisationChange.BLOCK.value, _("Interdire")),
            (AuthorisationChange.REMOVE.value, _("Retirer")),
        ],
    )


class SelfAuthorisationForm(forms.Form):
    grant = forms.ChoiceField(choices=[("1", "1"), ("0", "0")])
    confirm = forms.BooleanField(
        label=_("Le patient, informé, m'autorise à accéder à son DMP"), required=False
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("grant") == "1" and not data.get("confirm"):
            self.add_error("confirm", _("Le consentement du patient doit être déclaré."))
        return data


class StructureForm(forms.Form):
    structure = forms.CharField(max_length=40)


class DemoCardForm(forms.Form):
    professional = forms.CharField(max_length=20)


class WebAccountForm(forms.Form):
    """TD1.5: where the patient will receive their one-time login codes."""

    channel = forms.ChoiceField(
        label=_("Envoi des codes de connexion"),
        choices=[("email", _("par courriel")), ("sms", _("par SMS"))],
    )
    destination = forms.CharField(
        label=_("Adresse ou numéro (vide : celui du dossier)"), max_length=200, required=False
    )
    revoke_current = forms.BooleanField(
        label=_(
            "Le patient, présent, signale que quelqu'un d'autre utilise son accès : le révoquer "
            "tout de suite (sinon l'accès actuel reste valable jusqu'à l'activation du nouveau code)"
        ),
        required=False,
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        destination = str(data.get("destination") or "").strip()
        channel = data.get("channel")
        if destination and channel in {"email", "sms"}:
            checked = otp_destination_checked(str(channel), destination)
            if checked is None:
                self.add_error(
                    "destination",
                    _("Saisissez une adresse électronique valide.")
                    if channel == "email"
                    else _("Saisissez un numéro de téléphone mobile (06 ou 07, ou international en +…)."),
                )
            else:
                data["destination"] = checked
        return data
