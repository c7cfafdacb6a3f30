from django.urls import path

from dmp.portals.patient import views

app_name = "patient_portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("activation/", views.activation, name="activation"),
    path("connexion/", views.login, name="login"),
    path("connexion/code/", views.login_code, name="login_code"),
    path("deconnexion/", views.logout, name="logout"),
    path("demo/messages/", views.demo_outbox, name="demo_outbox"),
    path("documents/", views.documents, name="documents"),
    path("documents/ajouter/", views.document_add, name="document_add"),
    path("documents/<str:unique_id>/", views.document_detail, name="document"),
    path("documents/<str:unique_id>/pdf/", views.document_pdf, name="document_pdf"),
    path("documents/<str:unique_id>/corps/", views.document_body, name="document_body"),
    path("documents/<str:unique_id>/masquage/", views.document_mask, name="document_mask"),
    path("documents/<str:unique_id>/suppression/", views.document_delete, name="document_delete"),
    path("acces/", views.access, name="access"),
    path("acces/modifier/", views.access_change, name="access_change"),
    path("acces/oppositions/", views.access_oppositions, name="access_oppositions"),
    path("historique/", views.traces, name="traces"),
    path("expression/", views.expression, name="expression"),
    path("expression/personnes/", views.trusted_person_create, name="trusted_person_add"),
    path(
        "expression/personnes/<int:person_id>/retirer/",
        views.trusted_person_delete,
        name="trusted_person_remove",
    ),
    path("export/mon-dmp-xdm.zip", views.export_zip, name="export_zip"),
    path("export/synthese.pdf", views.summary_pdf, name="summary_pdf"),
    path("fermeture/", views.close, name="close"),
    path("securite/", views.security, name="security"),
]
