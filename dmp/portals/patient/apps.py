from django.apps import AppConfig


class PatientPortalConfig(AppConfig):
    name = "dmp.portals.patient"
    label = "patient_portal"
    verbose_name = "Web portal for patients"
