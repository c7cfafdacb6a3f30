"""The XDS registry of a DMP: submission sets, document entries, folders, associations.

One `DocumentEntry` row per logical document holds its *current* metadata in indexed
columns (queries never touch JSON). A metadata update (ITI-57: masking, visibility, archive,
deletion) gives the entry a new entryUUID and version and keeps the previous version in
`DocumentEntryVersion`; a replacement (RPLC) creates a new logical document and deprecates
the old one. Document bytes live in the blob store, encrypted with the record's key.

Identifiers are unique through constraints and searched through Meta indexes, never
`unique=True` / `db_index=True` on a CharField: on PostgreSQL those add a second
(varchar_pattern_ops, "_like") index for LIKE queries the registry never makes, about 85 MB per
million rows each, written by every submission. The record foreign keys of documents and
submission sets have no index of their own: the composite indexes start with the record.
"""

from __future__ import annotations

import uuid
from typing import Final

from django.db import models

from dmp.access.policy import DocumentStatus
from dmp.records.models import Record

STATUS_CHOICES = [(s.value, s.name.title()) for s in DocumentStatus]


class Confidentiality:
    """DMP confidentiality codes carried as XDS confidentialityCode (JDV_J08 / TRE_A07)."""

    NORMAL = "N"
    MASKED_TO_PROFESSIONALS = "MASQUE_PS"
    INVISIBLE_TO_PATIENT = "INVISIBLE_PATIENT"
    INVISIBLE_TO_LEGAL_REPRESENTATIVES = "INVISIBLE_REPRESENTANTS_LEGAUX"
    HL7_SYSTEM = "2.16.840.1.113883.5.25"
    DMP_SYSTEM = "1.2.250.1.213.1.1.4.13"
    DMP_CODES = frozenset({MASKED_TO_PROFESSIONALS, INVISIBLE_TO_PATIENT, INVISIBLE_TO_LEGAL_REPRESENTATIVES})
    # The DocumentEntry columns that carry the DMP codes, indexed for the visibility filters.
    FLAG_FIELDS: Final = {
        MASKED_TO_PROFESSIONALS: "masked_to_professionals",
        INVISIBLE_TO_PATIENT: "invisible_to_patient",
        INVISIBLE_TO_LEGAL_REPRESENTATIVES: "invisible_to_legal_representatives",
    }


class SubmissionSet(models.Model):
    # Indexed by subset_record_time_idx, which starts with the record.
    record = models.ForeignKey(
        Record, on_delete=models.PROTECT, related_name="submission_sets", db_index=False
    )
    entry_uuid = models.CharField(max_length=64)
    unique_id = models.CharField(max_length=128)
    source_id = models.CharField(max_length=128)
    submission_time = models.DateTimeField()
    content_type_code = models.JSONField(default=dict)  # {code, scheme, display}
    authors = models.JSONField(default=list)
    intended_recipients = models.JSONField(default=list)
    title = models.CharField(max_length=256, blank=True)
    comments = models.TextField(blank=True)
    patient_id = models.CharField(max_length=128)
    availability_status = models.CharField(
        max_length=64, choices=STATUS_CHOICES, default=DocumentStatus.APPROVED
    )
    # Who submitted it, as authenticated (not as declared in the metadata).
    submitted_by_id = models.CharField(max_length=64)
    submitted_by_structure_id = models.CharField(max_length=40, blank=True)
    software_name = models.CharField(max_length=128, blank=True)
    registered_at = models.DateTimeField(auto_now_add=True)
    # The lot's verified XAdES signature (XDS channel): its bytes in the blob store by SHA-256,
    # the signature document's uniqueId, the signing certificate and the signing time.
    signature_sha256 = models.CharField(max_length=64, blank=True)
    signature_size = models.PositiveIntegerField(default=0)
    signature_unique_id = models.CharField(max_length=128, blank=True)
    signature_signer_fingerprint = models.CharField(max_length=64, blank=True)
    signature_time = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["record", "submission_time"], name="subset_record_time_idx")]
        constraints = [
            models.UniqueConstraint(fields=["entry_uuid"], name="subset_entry_uuid_unique"),
            models.UniqueConstraint(fields=["unique_id"], name="subset_unique_id_unique"),
        ]

    def __str__(self) -> str:
        return f"SubmissionSet {self.unique_id}"


class DocumentEntry(models.Model):
    # Indexed by the doc_record_* indexes, which all start with the record.
    record = models.ForeignKey(Record, on_delete=models.PROTECT, related_name="documents", db_index=False)
    submission_set = models.ForeignKey(SubmissionSet, on_delete=models.PROTECT, related_name="documents")
    logical_id = models.UUIDField(default=uuid.uuid4, unique=True)
    entry_uuid = models.CharField(max_length=64)
    version = models.PositiveIntegerField(default=1)
    unique_id = models.CharField(max_length=128)
    repository_unique_id = models.CharField(max_length=64)
    availability_status = models.CharField(
        max_length=64, choices=STATUS_CHOICES, default=DocumentStatus.APPROVED
    )
    # Classification (code + coding scheme + display, flattened into indexed columns).
    class_code = models.CharField(max_length=64)
    class_code_scheme = models.CharField(max_length=64)
    class_code_display = models.CharField(max_length=256, blank=True)
    type_code = models.CharField(max_length=64)
    type_code_scheme = models.CharField(max_length=64)
    type_code_display = models.CharField(max_length=256, blank=True)
    format_code = models.CharField(max_length=128)
    format_code_scheme = models.CharField(max_length=64)
    format_code_display = models.CharField(max_length=256, blank=True)
    healthcare_facility_type_code = models.CharField(max_length=64)
    healthcare_facility_type_code_scheme = models.CharField(max_length=64)
    healthcare_facility_type_code_display = models.CharField(max_length=256, blank=True)
    practice_setting_code = models.CharField(max_length=64)
    practice_setting_code_scheme = models.CharField(max_length=64)
    practice_setting_code_display = models.CharField(max_length=256, blank=True)
    # All confidentialityCodes as [{code, scheme, display}], plus the DMP flags as booleans.
    confidentiality_codes = models.JSONField(default=list)
    masked_to_professionals = models.BooleanField(default=False)
    invisible_to_patient = models.BooleanField(default=False)
    invisible_to_legal_representatives = models.BooleanField(default=False)
    event_codes = models.JSONField(default=list)
    title = models.CharField(max_length=256, blank=True)
    comments = models.TextField(blank=True)
    language_code = models.CharField(max_length=16, default="fr-FR")
    mime_type = models.CharField(max_length=128)
    size = models.BigIntegerField()
    hash_sha1 = models.CharField(max_length=40)
    hash_sha256 = models.CharField(max_length=64)
    creation_time = models.DateTimeField()
    service_start_time = models.DateTimeField(null=True, blank=True)
    service_stop_time = models.DateTimeField(null=True, blank=True)
    patient_id = models.CharField(max_length=128)  # INS in CX form
    source_patient_id = models.CharField(max_length=256)
    source_patient_info = models.JSONField(default=list)
    legal_authenticator = models.CharField(max_length=256, blank=True)
    reference_ids = models.JSONField(default=list)
    authors = models.JSONField(default=list)  # full XDS author slots, in order
    # Who submitted it, as authenticated.
    submitted_by_id = models.CharField(max_length=64)
    submitted_by_structure_id = models.CharField(max_length=40, blank=True)
    registered_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The (person_id, structure_id) of its author rows, in order, as JSON (`rows.author_ids_text`),
    # written with the entry and its rows (authors never change after): what `rows.AuthorPairs`
    # reads, where its subquery cost PostgreSQL 0.21 ms of a 50-document search. NULL for an entry
    # stored before the column: its rows are read.
    author_ids = models.TextField(null=True, blank=True, editable=False)  # noqa: DJ001 - NULL is "not written"
    # (person_id, structure_id) of the author rows, when read with the document
    # (`documents.access`, `documents.rows.AuthorPairs`); None means "read `author_rows`".
    author_pairs: tuple[tuple[str, str], ...] | None = None

    class Meta:
        indexes = [
            # A patient's document query: record + status, newest first.
            models.Index(
                fields=["record", "availability_status", "-creation_time"], name="doc_record_status_idx"
            ),
            models.Index(fields=["record", "class_code"], name="doc_record_class_idx"),
            models.Index(fields=["record", "registered_at"], name="doc_record_registered_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["entry_uuid"], name="doc_entry_uuid_unique"),
            models.UniqueConstraint(fields=["unique_id"], name="doc_unique_id_unique"),
        ]

    def __str__(self) -> str:
        return f"DocumentEntry {self.unique_id} v{self.version}"


class DocumentAuthor(models.Model):
    """One author of a document, with indexed identifiers for access checks and author search."""

    document = models.ForeignKey(DocumentEntry, on_delete=models.CASCADE, related_name="author_rows")
    position = models.PositiveSmallIntegerField()
    person_id = models.CharField(max_length=64, blank=True)  # PS_IdNat
    person_name = models.CharField(max_length=256, blank=True)  # "FAMILY Given" for $AuthorPerson
    structure_id = models.CharField(max_length=40, blank=True)
    profession_code = models.CharField(max_length=16, blank=True)
    specialty_code = models.CharField(max_length=16, blank=True)

    class Meta:
        indexes = [models.Index(fields=["person_id"], name="author_person_idx")]
        constraints = [
            models.UniqueConstraint(fields=["document", "position"], name="author_unique_position"),
        ]

    def __str__(self) -> str:
        return f"{self.person_name} ({self.person_id})"


class DocumentEntryVersion(models.Model):
    """A previous version of a document's metadata (entryUUID before an ITI-57 update)."""

    document = models.ForeignKey(DocumentEntry, on_delete=models.CASCADE, related_name="previous_versions")
    entry_uuid = models.CharField(max_length=64)
    version = models.PositiveIntegerField()
    snapshot = models.JSONField()
    superseded_at = models.DateTimeField()
    superseded_by_id = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["entry_uuid"], name="version_entry_uuid_unique")]

    def __str__(self) -> str:
        return f"{self.entry_uuid} (v{self.version})"


class Folder(models.Model):
    record = models.ForeignKey(Record, on_delete=models.PROTECT, related_name="folders")
    entry_uuid = models.CharField(max_length=64)
    unique_id = models.CharField(max_length=128)
    title = models.CharField(max_length=256, blank=True)
    comments = models.TextField(blank=True)
    codes = models.JSONField(default=list)
    patient_id = models.CharField(max_length=128)
    last_update_time = models.DateTimeField()
    availability_status = models.CharField(
        max_length=64, choices=STATUS_CHOICES, default=DocumentStatus.APPROVED
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["entry_uuid"], name="folder_entry_uuid_unique"),
            models.UniqueConstraint(fields=["unique_id"], name="folder_unique_id_unique"),
        ]

    def __str__(self) -> str:
        return f"Folder {self.unique_id}"


class AssociationType:
    HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
    REPLACE = "urn:ihe:iti:2007:AssociationType:RPLC"
    APPEND = "urn:ihe:iti:2007:AssociationType:APND"
    TRANSFORM = "urn:ihe:iti:2007:AssociationType:XFRM"
    TRANSFORM_REPLACE = "urn:ihe:iti:2007:AssociationType:XFRM_RPLC"
    SIGNS = "urn:ihe:iti:2007:AssociationType:signs"
    IS_SNAPSHOT_OF = "urn:ihe:iti:2010:AssociationType:IsSnapshotOf"
    RELATIONSHIPS = frozenset({REPLACE, APPEND, TRANSFORM, TRANSFORM_REPLACE, SIGNS, IS_SNAPSHOT_OF})
    REPLACING = frozenset({REPLACE, TRANSFORM_REPLACE})
    ALL = RELATIONSHIPS | {HAS_MEMBER}


class Association(models.Model):
    record = models.ForeignKey(Record, on_delete=models.PROTECT, related_name="associations")
    entry_uuid = models.CharField(max_length=64)
    association_type = models.CharField(max_length=80)
    source_uuid = models.CharField(max_length=64)
    target_uuid = models.CharField(max_length=64)
    # SubmissionSetStatus slot of HasMember (Original / Reference).
    submission_set_status = models.CharField(max_length=16, blank=True)
    availability_status = models.CharField(
        max_length=64, choices=STATUS_CHOICES, default=DocumentStatus.APPROVED
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["source_uuid"], name="association_source_idx"),
            models.Index(fields=["target_uuid"], name="association_target_idx"),
        ]
        constraints = [models.UniqueConstraint(fields=["entry_uuid"], name="association_entry_uuid_unique")]

    def __str__(self) -> str:
        return f"{self.association_type.rsplit(':', 1)[-1]} {self.source_uuid} -> {self.target_uuid}"


class RecordKey(models.Model):
    """A record's data key, wrapped by the master key. Deleting it destroys the record's content."""

    record = models.OneToOneField(Record, on_delete=models.PROTECT, related_name="key")
    key_id = models.UUIDField(default=uuid.uuid4, unique=True)
    wrapped_key = models.BinaryField()
    master_key_fingerprint = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)
    destroyed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"RecordKey {self.key_id}"
