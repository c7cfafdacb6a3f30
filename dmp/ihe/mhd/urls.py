"""FHIR R4 base: /fhir/ (IHE MHD / PDSm)."""

from django.urls import path, re_path

from dmp.ihe.mhd import views

app_name = "mhd"

urlpatterns = [
    path("", views.transaction, name="transaction"),
    path("metadata", views.capability_statement, name="metadata"),
    path("openapi.json", views.openapi, name="openapi"),
    path("token", views.token, name="token"),
    path("DocumentReference", views.document_references, name="document-references"),
    path("DocumentReference/<str:resource_id>", views.document_reference_read, name="document-reference"),
    path("Binary/<str:resource_id>", views.binary, name="binary"),
    path("List", views.lists, name="lists"),
    path("Patient", views.patients, name="patients"),
    path("AuditEvent", views.audit_events, name="audit-events"),
    # Last: any other path gets an OperationOutcome rather than Django's HTML page.
    re_path(r"^(?P<path>.*)$", views.unknown, name="unknown"),
]
