"""The blob store: encrypted per record, verified on write and read, on the filesystem and on an
S3-compatible server over HTTP; deleting a record's key makes its content unreadable."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import time
from pathlib import Path

import pytest
from django.core.management import call_command
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
        assert [blob.name for blob in backend.list()] == [name]  # what blobs_gc walks
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


def _age(path, hours):
    old = time.time() - hours * 3600
    os.utime(path, (old, old))


@pytest.mark.django_db
def test_blobs_gc_deletes_only_old_unreferenced_bytes(personas, blob_dir):
    """The bytes of a refused submission stay behind (stored before the refusal); the collector
    deletes them, and nothing a document version or a destroyed record still names."""
    bernard = personas.ps(personas.dr_bernard)
    author = author_for(
        person_id=personas.dr_bernard.national_id,
        family_name=personas.dr_bernard.family_name,
        given_name=personas.dr_bernard.given_name,
    )
    submission = submission_for(ins=personas.alice.identifier, author=author, drafts=[DocumentDraft()])
    kept = submission_register(caller=bernard, submission=submission).documents[0]
    # The same uniqueId with other bytes: refused once those bytes are already stored.
    other = submission_for(
        ins=personas.alice.identifier,
        author=author,
        drafts=[DocumentDraft(unique_id=kept.unique_id, title="Autre")],
    )
    with pytest.raises(ValidationFailed):
        submission_register(caller=bernard, submission=other)
    stray = blob_dir / "not-a-key" / "ab" / "leftover"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"x")
    files = sorted(p for p in blob_dir.rglob("*") if p.is_file())
    assert len(files) == 3
    for path in files:
        _age(path, 48)
    young = submission_for(
        ins=personas.alice.identifier,
        author=author,
        drafts=[DocumentDraft(unique_id=kept.unique_id, title="Neuf")],
    )
    with pytest.raises(ValidationFailed):
        submission_register(caller=bernard, submission=young)  # its orphan is recent: kept

    out = io.StringIO()
    call_command("blobs_gc", "--dry-run", stdout=out)
    assert (
        "4 blobs: 1 referenced, 1 unreferenced but recent, 0 under destroyed keys; would delete 2"
        in out.getvalue()
    )
    assert len([p for p in blob_dir.rglob("*") if p.is_file()]) == 4

    call_command("blobs_gc", stdout=io.StringIO())
    remaining = [p for p in blob_dir.rglob("*") if p.is_file()]
    assert len(remaining) == 2
    assert not stray.exists()
    assert document_retrieve(caller=bernard, unique_id=kept.unique_id).content

    # Under a destroyed key nothing is touched (the bytes are already unreadable noise).
    record_key_destroy(caller=personas.operator(), record=personas.alice.record)
    for path in remaining:
        _age(path, 48)
    out = io.StringIO()
    call_command("blobs_gc", stdout=out)
    assert "2 under destroyed keys; deleted 0" in out.getvalue()


def test_the_directories_a_first_blob_creates_are_made_durable(tmp_path, monkeypatch):
    """A record's first blob creates `<key_id>/<xx>/`: each new entry is synced in its parent, or
    the acknowledged file could vanish with its directory on power loss."""
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(str(Path(f"/proc/self/fd/{fd}").readlink()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    root = tmp_path / "store"
    root.mkdir()
    store = BlobStore(FilesystemBackend(root), max_bytes=1024)
    key = _key()
    digests = store.store(key, b"<ClinicalDocument/>")
    leaf = (root / key.blob_name(digests.sha256)).parent
    for directory in (root, leaf.parent, leaf):  # parents of key_id/, of xx/, and the rename in xx/
        assert str(directory) in synced


def test_a_blob_in_an_existing_directory_is_synced_with_its_directory(tmp_path, monkeypatch):
    """The store's own names are joined to the root without resolving them: the file and the
    rename are still made durable, and the bytes read back are the ones written."""
    root = tmp_path / "store"
    root.mkdir()
    store = BlobStore(FilesystemBackend(root), max_bytes=1024)
    key = unwrap_key(MASTER, new_wrapped_key(MASTER), "0b7e4cd2-2f4a-4d8e-9c1e-5f3a2b1c0d9e")
    first = store.store(key, b"<ClinicalDocument>1</ClinicalDocument>")
    leaf = (root / key.blob_name(first.sha256)).parent
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(str(Path(f"/proc/self/fd/{fd}").readlink()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    again = store.store(key, b"<ClinicalDocument>1</ClinicalDocument>")  # same bytes, same directory
    assert synced[-1] == str(leaf)  # the rename, once the file itself was synced
    assert len(synced) == 2
    assert ".incoming-" in synced[0]
    assert store.load(key, sha256=again.sha256, size=again.size) == b"<ClinicalDocument>1</ClinicalDocument>"
    assert [p.name for p in leaf.iterdir()] == [key.blob_name(first.sha256).rsplit("/", 1)[1]]


def test_directories_another_process_made_are_synced_before_this_one_trusts_them(tmp_path, monkeypatch):
    """Another worker may have created `<key_id>/<xx>/` and not yet synced their entries when
    this one stores there: this one syncs them (once) before its put returns (found by review)."""
    root = tmp_path / "store"
    root.mkdir()
    key = _key()
    other = BlobStore(FilesystemBackend(root), max_bytes=1024)
    first = other.store(key, b"<ClinicalDocument>1</ClinicalDocument>")
    leaf = (root / key.blob_name(first.sha256)).parent
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(str(Path(f"/proc/self/fd/{fd}").readlink()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    this = BlobStore(FilesystemBackend(root), max_bytes=1024)
    this.store(key, b"<ClinicalDocument>1</ClinicalDocument>")  # the directories exist already
    for directory in (root, leaf.parent):  # the entries of key_id/ and of xx/
        assert str(directory) in synced
    synced.clear()
    this.store(key, b"<ClinicalDocument>1</ClinicalDocument>")  # trusted from now on
    assert len(synced) == 2  # the file, then its directory


@pytest.mark.parametrize(
    "name",
    [
        "../outside",
        "/etc/passwd",
        "0b7e4cd2-2f4a-4d8e-9c1e-5f3a2b1c0d9e/../../outside",
        "0b7e4cd2-2f4a-4d8e-9c1e-5f3a2b1c0d9e/ab/../../../" + "a" * 64,
    ],
)
def test_a_name_that_leaves_the_store_is_refused(tmp_path, name):
    backend = FilesystemBackend(tmp_path / "store")
    with pytest.raises(ValueError, match="escapes the store"):
        backend.put(name, b"x")
    with pytest.raises(ValueError, match="escapes the store"):
        backend.get(name)
    assert not (tmp_path / "outside").exists()


def test_a_listed_temporary_file_can_be_deleted(tmp_path):
    """What `list()` gives back (a temporary file left by a crash, say) names a file `delete` finds."""
    root = tmp_path / "store"
    backend = FilesystemBackend(root)
    backend.put("0b7e4cd2-2f4a-4d8e-9c1e-5f3a2b1c0d9e/ab/" + "c" * 64, b"x")
    (root / "0b7e4cd2-2f4a-4d8e-9c1e-5f3a2b1c0d9e" / "ab" / ".incoming-left").write_bytes(b"y")
    names = [info.name for info in backend.list()]
    assert names == [
        "0b7e4cd2-2f4a-4d8e-9c1e-5f3a2b1c0d9e/ab/.incoming-left",
        "0b7e4cd2-2f4a-4d8e-9c1e-5f3a2b1c0d9e/ab/" + "c" * 64,
    ]
    for name in names:
        assert backend.exists(name)
        backend.delete(name)
    assert list(backend.list()) == []
