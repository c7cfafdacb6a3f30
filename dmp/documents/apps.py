from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    name = "dmp.documents"
    label = "documents"
    verbose_name = "XDS documents: metadata registry, lifecycle, encrypted blob store"

    def ready(self) -> None:
        # The traces shown to the patient side leave out hidden documents' events: the rule is
        # here, the callers (records, accounts' notices) are below or beside this layer.
        from dmp.documents.selectors import without_hidden_events
        from dmp.records.selectors import TRACE_FILTERS

        if without_hidden_events not in TRACE_FILTERS:
            TRACE_FILTERS.append(without_hidden_events)
