"""The blob store: encrypted per record, verified on write and read, on the filesystem and on an
S3-compatible server over HTTP; deleting a record's key makes its content unreadable."""

from __future__ import annotations

import hashlib
import secrets

import pytest
from moto.server import ThreadedMotoServer

from dmp.common.errors import ErrorCode, IntegrityError, NotFound, ValidationFailed
from dmp.documents.blobstore import BlobStore, FilesystemBackend, S3Backend, new_wrapped_key, unwrap_key
from dmp.documents.builders import DocumentDraft, author_for, submission_for
from dmp.documents.keys import record_key_destroy
from dmp.documents.selectors import document_retrieve
from dmp.documents.services import submission_register

MASTER = secrets.token_bytes(32)


def _key():
    return unwrap_key(MASTER, new_wrapped_key(MASTER), "k-test")


def test_filesystem_round_trip_is_encrypted_and_checks_declared_hash_and_size(tmp_path):
    store = BlobStore(FilesystemBackend(tmp_path), max_bytes=1024)
    key, data = _key(), b"<ClinicalDocument/>" * 10
    digests = store.store(key, data, expected_sha1=hashlib.sha1(data, usedforsecurity=False).hexdigest())
    on_disk = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert len(on_disk) == 1
    assert data not in on_disk[0]  # encrypted at rest
    assert store.load(key, sha256=digests.sha256, size=digests.size) == data
    # Another record's key cannot read it.
    with pytest.raises(IntegrityError):
        store.load(_key(), sha256=digests.sha256, size=digests.size)
    with pytest.raises(ValidationFailed) as wrong:
        store.store(key, b"other", expected_sha1="0" * 40, expected_size=99)
    assert {p.code for p in wrong.value.problems} == {
        ErrorCode.NON_IDENTICAL_HASH,
        ErrorCode.NON_IDENTICAL_SIZE,
    }
    with pytest.raises(ValidationFailed):
        store.store(key, b"x" * 2048)
    assert len([p for p in tmp_path.rglob("*") if p.is_file()]) == 1  # nothing written on refusal


def test_s3_backend_over_http(monkeypatch):
    # The local S3 server accepts any credentials; boto3 only needs some.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "opendmp-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "opendmp-test")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        backend = S3Backend(bucket="opendmp-test", endpoint_url=f"http://{host}:{port}", region="eu-west-3")
        backend.client.create_bucket(
            Bucket="opendmp-test", CreateBucketConfiguration={"LocationConstraint": "eu-west-3"}
        )
        store = BlobStore(backend, max_bytes=1 << 20)
        key, data = _key(), secrets.token_bytes(5000)
        digests = store.store(key, data)
        assert store.load(key, sha256=digests.sha256, size=digests.size) == data
        name = key.blob_name(digests.sha256)
        assert backend.exists(name)
        raw = bytearray(backend.get(name))
        raw[-1] ^= 1
        backend.put(name, bytes(raw))
        with pytest.raises(IntegrityError):
            store.load(key, sha256=digests.sha256, size=digests.size)
    finally:
        server.stop()


@pytest.mark.django_db
def test_destroying_a_records_key_makes_its_documents_unreadable(personas, blob_dir):
    bernard = personas.ps(personas.dr_bernard)
    author = author_for(
        person_id=personas.dr_bernard.national_id,
        family_name=personas.dr_bernard.family_name,
        given_name=personas.dr_bernard.given_name,
    )
    registered = submission_register(
        caller=bernard,
        submission=submission_for(ins=personas.alice.identifier, author=author, drafts=[DocumentDraft()]),
    )
    unique_id = registered.documents[0].unique_id
    assert document_retrieve(caller=bernard, unique_id=unique_id).content
    record_key_destroy(caller=personas.operator(), record=personas.alice.record)
    with pytest.raises((IntegrityError, NotFound)):
        document_retrieve(caller=bernard, unique_id=unique_id)
    # The bytes are still on disk (and in backups) but nobody can decrypt them any more.
    assert any(p.is_file() for p in blob_dir.rglob("*"))
