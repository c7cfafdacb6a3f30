"""Audited actions, numbered by range so that codes stay stable as the list grows."""

from __future__ import annotations

from enum import IntEnum, StrEnum, unique


@unique
class AuditAction(IntEnum):
    # Records (1xx)
    RECORD_TEST = 100
    RECORD_CREATE = 101
    RECORD_CLOSE = 102
    RECORD_REACTIVATE = 103
    RECORD_READ_ADMIN = 104
    RECORD_UPDATE_ADMIN = 105
    RECORD_EXPORT = 106
    WEB_ACCOUNT_CREATE = 107
    RECORD_LIST_AUTHORISED = 108  # TD0.4
    # Authorisations (2xx)
    AUTHORISATION_GRANT = 200
    AUTHORISATION_REMOVE = 201
    AUTHORISATION_BLOCK = 202
    MEDECIN_TRAITANT_SET = 203
    MEDECIN_TRAITANT_UNSET = 204
    OPPOSITIONS_CHANGE = 205
    EXTERNAL_SOURCE_CONSENT = 206
    # Documents (3xx)
    DOCUMENT_QUERY = 300
    DOCUMENT_READ_METADATA = 301
    DOCUMENT_RETRIEVE = 302
    DOCUMENT_PUBLISH = 303
    DOCUMENT_REPLACE = 304
    DOCUMENT_DELETE = 305
    DOCUMENT_ARCHIVE = 306
    DOCUMENT_UNARCHIVE = 307
    DOCUMENT_MASK = 308
    DOCUMENT_UNMASK = 309
    DOCUMENT_VISIBILITY_CHANGE = 310
    METADATA_REMOVE = 311
    # Personal expression space (4xx)
    EXPRESSION_READ = 400
    EXPRESSION_UPDATE = 401
    # Traces (5xx)
    TRACES_READ = 500
    # Security (6xx)
    AUTHENTICATION_SUCCESS = 600
    AUTHENTICATION_FAILURE = 601
    # Operations (7xx)
    RECORD_KEY_DESTROY = 700
    IDENTITY_UPDATE = 701

    @property
    def label(self) -> str:
        return self.name.lower()


class Outcome(StrEnum):
    SUCCESS = "success"
    DENIED = "denied"
    FAILURE = "failure"
