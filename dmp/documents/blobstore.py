"""Encrypted, content-addressed blob store for document bytes.

* Each record has its own 256-bit data key, wrapped (AES key wrap, RFC 3394) by the master
  key from settings. Blobs are AES-256-GCM encrypted with it; destroying the data key makes
  the record's content unrecoverable everywhere, backups of the blob store included.
* A blob's name is HMAC-SHA-256(data key, SHA-256 of the plaintext): content-addressed within
  the record (a resubmission of the same bytes is stored once) without revealing the hash.
* SHA-1 (the XDS hash), SHA-256 and size are computed on write and checked against what the
  submitter declared; on read, GCM authenticates the ciphertext and SHA-256 and size are
  checked again, so corruption on disk is detected and never served.
* Writes are durable before they return: filesystem = temp file, fsync, rename, fsync of the
  directory, and of the parent of every directory the write created; S3 = PutObject with a
  SHA-256 checksum. Metadata is committed only afterwards.
* Bytes stored for a submission that is then refused stay behind, unreferenced: `blobs_gc`
  (documents.services.blobs_collect) deletes them once they are older than a grace period.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from django.conf import settings

from dmp.common.errors import ErrorCode, IntegrityError, Problem, ValidationFailed

MAGIC = b"ODMP1"
NONCE_BYTES = 12


@dataclass(frozen=True, slots=True)
class Digests:
    sha1: str
    sha256: str
    size: int

    @classmethod
    def of(cls, data: bytes) -> Digests:
        return cls(hashlib.sha1(data).hexdigest(), hashlib.sha256(data).hexdigest(), len(data))  # noqa: S324 - XDS hash


@dataclass(frozen=True, slots=True)
class DataKey:
    """A record's unwrapped data key, held in memory only while in use."""

    key_id: str
    secret: bytes = b""

    def blob_name(self, sha256: str) -> str:
        digest = hmac.new(self.secret, sha256.encode(), hashlib.sha256).hexdigest()
        return f"{self.key_id}/{digest[:2]}/{digest}"


class KeyDestroyed(IntegrityError):
    code = ErrorCode.INTEGRITY


def master_key_fingerprint(master_key: bytes) -> str:
    return hashlib.sha256(b"opendmp-master-key" + master_key).hexdigest()[:16]


def new_wrapped_key(master_key: bytes) -> bytes:
    return aes_key_wrap(master_key, secrets.token_bytes(32))


def unwrap_key(master_key: bytes, wrapped: bytes, key_id: str) -> DataKey:
    if not wrapped:
        raise KeyDestroyed("the record's data key was destroyed: its content is gone")
    try:
        return DataKey(key_id=key_id, secret=aes_key_unwrap(master_key, wrapped))
    except InvalidUnwrap as exc:
        raise IntegrityError("the record's data key cannot be unwrapped with this master key") from exc


@dataclass(frozen=True, slots=True)
class BlobInfo:
    name: str
    modified: dt.datetime  # aware, UTC


class BlobBackend(Protocol):
    def put(self, name: str, data: bytes) -> None: ...

    def get(self, name: str) -> bytes: ...

    def exists(self, name: str) -> bool: ...

    def delete(self, name: str) -> None: ...

    def list(self) -> Iterator[BlobInfo]:
        """Every stored name, in lexical order (a record's blobs, `<key_id>/...`, come together)."""
        ...


class BlobMissing(IntegrityError):
    pass


# The names the store makes (`DataKey.blob_name`): `<key_id>/<xx>/<HMAC>`, lower-case hex. Such a
# name cannot leave the root, so it is joined to it as is: `Path.resolve()` on every call (a
# system call per path component) was a fifth of a put's CPU besides the fsyncs. Any other name
# (one read back from `list()`, a temporary file) is resolved and checked.
_BLOB_NAME = re.compile(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}/[0-9a-f]{2}/[0-9a-f]{64}")
_TEMPORARY_PREFIX = ".incoming-"
_DURABLE_MEMORY = 65536


class FilesystemBackend:
    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self._resolved_root = root.resolve()
        # Directories whose entry this process has seen synced in their parent (bounded).
        self._durable: set[Path] = set()
        # Only bulk loaders that sync the whole file system at the end may turn this off.
        self.fsync = fsync

    def _path(self, name: str) -> Path:
        if _BLOB_NAME.fullmatch(name):
            return self._resolved_root / name
        path = (self.root / name).resolve()
        if not path.is_relative_to(self._resolved_root):
            raise ValueError(f"blob name {name!r} escapes the store")
        return path

    def put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        directory = path.parent
        self._make_directories(directory)
        # A file of the final directory, so that the rename stays within one file system; an
        # unbuffered write: through a buffered file object, 30 KB took twice the CPU.
        temporary = directory / f"{_TEMPORARY_PREFIX}{secrets.token_hex(8)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o600)
        try:
            try:
                _write_all(fd, data)
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            temporary.replace(path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        if self.fsync:
            _fsync_directory(directory)

    def _make_directories(self, directory: Path) -> None:
        """Creates the missing directories one level at a time, each made durable in its parent:
        the first blob of a record lands in new `<key_id>/<xx>/` directories, and a rename that
        is durable inside a directory whose own entry is not would be lost with it on power loss.

        A directory that exists is not yet durable either: a concurrent put may have created it
        and not synced its parent yet. Its parent is synced once by this process before it is
        trusted (`_durable`), so that no put returns before the entries above its blob are."""
        levels = []
        while directory not in self._durable:
            levels.append(directory)
            if directory == self._resolved_root or directory.parent == directory:
                break
            directory = directory.parent
        for level in reversed(levels):
            level.mkdir(parents=level == self._resolved_root, exist_ok=True)
            if self.fsync:
                _fsync_directory(level.parent)
            if len(self._durable) >= _DURABLE_MEMORY:
                self._durable.clear()
            self._durable.add(level)

    def get(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError as exc:
            raise BlobMissing(f"blob {name} is missing from the store") from exc

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def list(self) -> Iterator[BlobInfo]:
        root = self.root
        if not root.is_dir():
            return
        for directory, subdirectories, files in os.walk(root):
            subdirectories.sort()  # os.walk descends in this order: the listing stays lexical
            for file in sorted(files):
                path = Path(directory, file)
                modified = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC)
                yield BlobInfo(path.relative_to(root).as_posix(), modified)


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3Backend:
    def __init__(self, *, bucket: str, endpoint_url: str | None, region: str, client: Any = None) -> None:
        import boto3  # imported here: only S3 deployments need it loaded

        self.bucket = bucket
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url, region_name=region)

    def put(self, name: str, data: bytes) -> None:
        import base64

        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        self.client.put_object(Bucket=self.bucket, Key=name, Body=data, ChecksumSHA256=checksum)

    def get(self, name: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=name)
        except self.client.exceptions.NoSuchKey as exc:
            raise BlobMissing(f"blob {name} is missing from the store") from exc
        body: bytes = response["Body"].read()
        return body

    def exists(self, name: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=name)
        except self.client.exceptions.ClientError:
            return False
        return True

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=name)

    def list(self) -> Iterator[BlobInfo]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for item in page.get("Contents", []):
                yield BlobInfo(item["Key"], item["LastModified"])


class BlobStore:
    def __init__(self, backend: BlobBackend, *, max_bytes: int) -> None:
        self.backend = backend
        self.max_bytes = max_bytes

    def store(
        self,
        key: DataKey,
        data: bytes,
        *,
        expected_sha1: str | None = None,
        expected_size: int | None = None,
    ) -> Digests:
        """Encrypt and durably store `data`; checks the submitter's declared hash and size first."""
        if len(data) > self.max_bytes:
            raise ValidationFailed(
                [
                    Problem(
                        ErrorCode.DOCUMENT_TOO_LARGE,
                        f"document of {len(data)} bytes exceeds {self.max_bytes}",
                    )
                ]
            )
        digests = Digests.of(data)
        problems = []
        if expected_sha1 and expected_sha1.lower() != digests.sha1:
            problems.append(
                Problem(ErrorCode.NON_IDENTICAL_HASH, "declared hash does not match the document")
            )
        if expected_size is not None and expected_size != digests.size:
            problems.append(
                Problem(ErrorCode.NON_IDENTICAL_SIZE, "declared size does not match the document")
            )
        if problems:
            raise ValidationFailed(problems)
        # Always (re)written: an atomic rename also heals a blob found corrupted earlier.
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(key.secret).encrypt(nonce, data, _aad(key, digests.sha256))
        self.backend.put(key.blob_name(digests.sha256), MAGIC + nonce + sealed)
        return digests

    def load(self, key: DataKey, *, sha256: str, size: int) -> bytes:
        """Decrypt and verify; raises IntegrityError rather than return altered bytes."""
        raw = self.backend.get(key.blob_name(sha256))
        if not raw.startswith(MAGIC) or len(raw) < len(MAGIC) + NONCE_BYTES + 16:
            raise IntegrityError("stored blob is not an OpenDMP encrypted blob")
        nonce = raw[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
        try:
            data = AESGCM(key.secret).decrypt(nonce, raw[len(MAGIC) + NONCE_BYTES :], _aad(key, sha256))
        except InvalidTag as exc:
            raise IntegrityError("stored blob failed authentication: corrupted or tampered") from exc
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
            raise IntegrityError("stored blob does not match its recorded size and SHA-256")
        return data


def _aad(key: DataKey, sha256: str) -> bytes:
    return f"{key.key_id}:{sha256}".encode()


@cache
def default_blob_store() -> BlobStore:
    backend: BlobBackend
    if settings.OPENDMP_BLOB_BACKEND == "s3":
        backend = S3Backend(
            bucket=settings.OPENDMP_S3_BUCKET,
            endpoint_url=settings.OPENDMP_S3_ENDPOINT_URL,
            region=settings.OPENDMP_S3_REGION,
        )
    else:
        backend = FilesystemBackend(Path(settings.OPENDMP_BLOB_DIR))
    return BlobStore(backend, max_bytes=settings.OPENDMP_MAX_DOCUMENT_BYTES)
