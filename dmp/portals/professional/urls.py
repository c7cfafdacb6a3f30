from django.urls import path

from dmp.portals.professional import views

app_name = "professional_portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("connexion/", views.login, name="login"),
    path("connexion/cps", views.login_cps, name="login_cps"),
    path("connexion/demo", views.login_demo, name="login_demo"),
    path("connexion/psc", views.login_psc, name="login_psc"),
    path("connexion/psc/retour", views.login_psc_return, name="login_psc_return"),
    path("deconnexion", views.logout, name="logout"),
    path("ouvrir/<str:token>", views.context_open, name="context_open"),
    path("structure", views.choose_structure, name="choose_structure"),
    path("traces", views.traces, name="traces"),
    path("recherche", views.search, name="search"),
    path("dossier/creer", views.record_create_view, name="record_create"),
    path("dossier/<uuid:record>/", views.record_status, name="record_status"),
    path("dossier/<uuid:record>/documents", views.documents, name="documents"),
    path("dossier/<uuid:record>/ajouter", views.upload, name="upload"),
    path("dossier/<uuid:record>/autorisation", views.authorisation_self_view, name="authorisation_self"),
    path("dossier/<uuid:record>/medecin-traitant", views.medecin_traitant, name="medecin_traitant"),
    path("dossier/<uuid:record>/acces-web", views.web_account, name="web_account"),
    path("dossier/<uuid:record>/autorisations", views.authorisations, name="authorisations"),
    path("dossier/<uuid:record>/urgence", views.emergency_start, name="emergency_start"),
    path("urgence/fin", views.emergency_end, name="emergency_end"),
    path("dossier/<uuid:record>/document/<str:unique_id>/", views.document_view, name="document"),
    path("dossier/<uuid:record>/document/<str:unique_id>/corps", views.document_body, name="document_body"),
    path("dossier/<uuid:record>/document/<str:unique_id>/brut", views.document_raw, name="document_raw"),
    path(
        "dossier/<uuid:record>/document/<str:unique_id>/action", views.document_action, name="document_action"
    ),
]
