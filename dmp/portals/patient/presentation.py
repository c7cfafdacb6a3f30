"""Words shown to patients for audit actions and access modes (translated in templates)."""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from dmp.audit.actions import AuditAction

_LABELS: dict[AuditAction, Promise] = {
    AuditAction.RECORD_TEST: _("Vérification de l'existence du dossier"),
    AuditAction.RECORD_CREATE: _("Création du dossier"),
    AuditAction.RECORD_CLOSE: _("Fermeture du dossier"),
    AuditAction.RECORD_REACTIVATE: _("Réactivation du dossier"),
    AuditAction.RECORD_READ_ADMIN: _("Consultation des informations administratives"),
    AuditAction.RECORD_UPDATE_ADMIN: _("Modification des informations administratives"),
    AuditAction.RECORD_EXPORT: _("Export du dossier"),
    AuditAction.WEB_ACCOUNT_CREATE: _("Accès patient en ligne"),
    AuditAction.AUTHORISATION_GRANT: _("Autorisation d'accès"),
    AuditAction.AUTHORISATION_REMOVE: _("Retrait d'autorisation"),
    AuditAction.AUTHORISATION_BLOCK: _("Blocage d'un professionnel"),
    AuditAction.MEDECIN_TRAITANT_SET: _("Déclaration de médecin traitant DMP"),
    AuditAction.MEDECIN_TRAITANT_UNSET: _("Fin de médecin traitant DMP"),
    AuditAction.OPPOSITIONS_CHANGE: _("Modification des oppositions"),
    AuditAction.DOCUMENT_QUERY: _("Consultation de la liste des documents"),
    AuditAction.DOCUMENT_READ_METADATA: _("Consultation d'une fiche de document"),
    AuditAction.DOCUMENT_RETRIEVE: _("Consultation d'un document"),
    AuditAction.DOCUMENT_PUBLISH: _("Ajout d'un document"),
    AuditAction.DOCUMENT_REPLACE: _("Remplacement d'un document"),
    AuditAction.DOCUMENT_DELETE: _("Suppression d'un document"),
    AuditAction.DOCUMENT_ARCHIVE: _("Archivage d'un document"),
    AuditAction.DOCUMENT_UNARCHIVE: _("Désarchivage d'un document"),
    AuditAction.DOCUMENT_MASK: _("Masquage d'un document"),
    AuditAction.DOCUMENT_UNMASK: _("Démasquage d'un document"),
    AuditAction.DOCUMENT_VISIBILITY_CHANGE: _("Changement de visibilité d'un document"),
    AuditAction.EXPRESSION_READ: _("Consultation de l'espace d'expression"),
    AuditAction.EXPRESSION_UPDATE: _("Modification de l'espace d'expression"),
    AuditAction.TRACES_READ: _("Consultation de l'historique"),
    AuditAction.AUTHENTICATION_SUCCESS: _("Connexion"),
    AuditAction.AUTHENTICATION_FAILURE: _("Échec de connexion"),
}

MODE_LABELS: dict[str, Promise] = {
    "normal": _("normal"),
    "bris_de_glace": _("bris de glace (urgence)"),
    "centre_15": _("SAMU – Centre 15"),
}
EXCEPTIONAL_MODES = frozenset({"bris_de_glace", "centre_15"})


def action_label(action: int) -> str:
    try:
        return str(_LABELS.get(AuditAction(action), AuditAction(action).label))
    except ValueError:
        return str(action)
