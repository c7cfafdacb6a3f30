from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    name = "dmp.documents"
    label = "documents"
    verbose_name = "XDS documents: metadata registry, lifecycle, encrypted blob store"
