"""The data bucket, through google-cloud-storage.

:class:`BucketStore` is the plain bucket. :class:`RunScopedStore` is what one execution of a
stage writes through: its data files go into a run folder of their own, its manifest is
published with a generation precondition, and its cleanup deletes only folders that can never
be published any more (the layout and the argument are in :mod:`spotify_pipeline.layout`).
"""

from __future__ import annotations

import hashlib
import io
import logging
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import date
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from spotify_pipeline import layout
from spotify_pipeline.manifest import FileEntry, Manifest, ManifestError, sha256_hex

if TYPE_CHECKING:
    import google.cloud.storage as storage

log = logging.getLogger(__name__)

# Bytes a streamed upload holds before sending them (a multiple of 256 KiB, as resumable uploads
# require): the whole memory cost of writing a file of any size, a few requests per 100 MiB.
UPLOAD_CHUNK_BYTES = 8 << 20


class StageStore(Protocol):
    """What transform and recommend need of a store (BucketStore or RunScopedStore; fakes in tests)."""

    def read_verified(self, entry: FileEntry) -> bytes: ...

    def write(
        self, name: str, data: bytes, content_type: str, *, rows: int | None = None, table: str | None = None
    ) -> FileEntry: ...

    def write_manifest(self, manifest: Manifest, name: str) -> int: ...

    def delete_stale(self, prefix: str, keep: set[str]) -> list[str]: ...


class ObjectWriter(io.RawIOBase):
    """A write-only binary file for one object: forwards to ``raw`` (the upload) and keeps the
    SHA-256 and size of what passed, so the file's manifest entry needs no second read."""

    def __init__(self, name: str, raw: BinaryIO) -> None:
        self.name = name  # the object actually written (a run-scoped store's folder included)
        self._raw = raw
        self._sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._raw.write(view)
        self._sha256.update(view)
        self.size += len(view)
        return len(view)

    def tell(self) -> int:
        return self.size

    def entry(self, *, rows: int | None = None, table: str | None = None) -> FileEntry:
        """The manifest entry of what was written (once the upload is closed)."""
        return FileEntry(name=self.name, sha256=self._sha256.hexdigest(), bytes=self.size, rows=rows, table=table)


class StaleObject(Exception):
    """The object changed since the event was emitted: a newer write supersedes this event."""


class ObjectMismatch(StaleObject):
    """A file listed in a manifest is missing or no longer matches its checksum.

    Stale when the manifest has been superseded since (its publisher's successor deleted the
    folder); the entry points turn it into a permanent error when the manifest is still current,
    since then the object was altered or deleted outside the pipeline.
    """


class ConcurrentPublish(Exception):
    """Another execution published the stage's manifest while this one ran: the precondition
    ``ifGenerationMatch`` of this execution's manifest failed, and nothing of it was published."""

    def __init__(self, name: str, base_generation: int) -> None:
        self.name, self.base_generation = name, base_generation
        super().__init__(
            f"{name} was published by a concurrent execution since generation {base_generation}; "
            "this execution's result was not published"
        )


class BucketStore:
    def __init__(self, client: storage.Client, bucket: str, *, upload_chunk_bytes: int = UPLOAD_CHUNK_BYTES) -> None:
        self._client = client
        self.bucket_name = bucket
        self._bucket = client.bucket(bucket)
        self.upload_chunk_bytes = upload_chunk_bytes

    def write(
        self, name: str, data: bytes, content_type: str, *, rows: int | None = None, table: str | None = None
    ) -> FileEntry:
        self._bucket.blob(name).upload_from_string(data, content_type=content_type)
        return FileEntry(name=name, sha256=sha256_hex(data), bytes=len(data), rows=rows, table=table)

    @contextmanager
    def open_writer(self, name: str, content_type: str) -> Iterator[ObjectWriter]:
        """A new object written as it is produced: a resumable upload sending
        ``upload_chunk_bytes`` at a time (memory holds one chunk, never the file), finalized when
        the context exits, cancelled if it raises. Only if the object does not exist yet
        (``ifGenerationMatch=0``): stage files go to fresh run folders, so this never overwrites."""
        blob = self._bucket.blob(name)
        with blob.open(
            "wb",
            chunk_size=self.upload_chunk_bytes,
            ignore_flush=True,  # Parquet writers flush; only close() may finalize the upload
            content_type=content_type,
            if_generation_match=0,
        ) as upload:
            yield ObjectWriter(name, upload)

    def write_manifest(self, manifest: Manifest, name: str, *, if_generation_match: int | None = None) -> int:
        """Write a manifest; with ``if_generation_match`` only if the object is still at that
        generation (0: only if it does not exist), else :class:`ConcurrentPublish`."""
        from google.api_core.exceptions import PreconditionFailed

        blob = self._bucket.blob(name)
        try:
            blob.upload_from_string(
                manifest.to_bytes(), content_type="application/json", if_generation_match=if_generation_match
            )
        except PreconditionFailed:
            raise ConcurrentPublish(name, if_generation_match or 0) from None
        return int(blob.generation or 0)

    def generation(self, name: str) -> int:
        """The object's current generation; 0 when it does not exist."""
        blob = self._bucket.get_blob(name)
        return int(blob.generation or 0) if blob is not None else 0

    def read(self, name: str) -> bytes:
        data: bytes = self._bucket.blob(name).download_as_bytes()
        return data

    def read_verified(self, entry: FileEntry) -> bytes:
        """Read a file listed in a manifest, checked against the manifest's checksum."""
        from google.api_core.exceptions import NotFound

        uri = f"gs://{self.bucket_name}/{entry.name}"
        try:
            data = self.read(entry.name)
        except NotFound:
            raise ObjectMismatch(f"{uri}: listed in the manifest, but the object does not exist") from None
        actual = sha256_hex(data)
        if actual != entry.sha256:
            raise ObjectMismatch(
                f"{uri} changed since its manifest was written: field 'sha256' = {entry.sha256!r} in the manifest, "
                f"but the object's content hashes to {actual!r} ({len(data)} bytes)"
            )
        return data

    def read_manifest(self, name: str, generation: int | None = None) -> tuple[Manifest, int, str]:
        """The manifest at ``generation`` (the event's), with its generation and checksum.

        Reading pins the generation, so an older event can never act on a newer manifest's
        content, and a superseded one raises :class:`StaleObject`.
        """
        from google.api_core.exceptions import NotFound, PreconditionFailed

        blob = self._bucket.get_blob(name)
        if blob is None:
            raise StaleObject(f"gs://{self.bucket_name}/{name} no longer exists")
        current = int(blob.generation or 0)
        if generation is not None and current != generation:
            raise StaleObject(f"gs://{self.bucket_name}/{name}#{generation} was superseded by generation {current}")
        try:
            data = blob.download_as_bytes(if_generation_match=current)
        except (NotFound, PreconditionFailed):
            raise StaleObject(f"gs://{self.bucket_name}/{name} was replaced or deleted while being read") from None
        manifest = Manifest.from_bytes(data, f"gs://{self.bucket_name}/{name}#{current}")
        return manifest, current, sha256_hex(data)

    def names(self, prefix: str) -> list[str]:
        return sorted(b.name for b in self._client.list_blobs(self.bucket_name, prefix=prefix))

    def delete(self, name: str) -> bool:
        """Delete an object; False if it was already gone (a concurrent cleanup)."""
        from google.api_core.exceptions import NotFound

        try:
            self._bucket.blob(name).delete()
        except NotFound:
            return False
        return True

    def delete_stale(self, prefix: str, keep: set[str]) -> list[str]:
        """Delete objects under ``prefix`` that ``keep`` does not list. Safe only when no other
        execution writes under ``prefix``; stages go through :class:`RunScopedStore` instead."""
        removed = [name for name in self.names(prefix) if name not in keep]
        for name in removed:
            self.delete(name)
        return removed


class RunScopedStore:
    """The bucket as one execution of ``stage`` sees it (the write surface of the stage cores).

    * ``write(name)`` for a name under ``<stage>/snapshot_date=D/`` stores the object in this
      execution's run folder for D instead (``.../run=<run id>.<base>.<nonce>/<rest of name>``)
      and returns the entry with the name actually written; the base generation is the stage
      manifest's generation read before the folder's first object is written.
    * ``write_manifest`` publishes with ``ifGenerationMatch=<base>``: if another execution
      published since, nothing is published, this execution's folder is deleted and
      :class:`ConcurrentPublish` is raised. Two executions of one snapshot can therefore never
      both publish from the same base, and no manifest ever lists another execution's files.
    * ``delete_stale`` (after publishing) removes the run folders whose base generation is older
      than the manifest just published (they can never be published: their precondition names a
      generation that is gone for good) and objects outside any run folder (the layout before
      run folders); folders of executions that began after this publish are left alone.

    Content never depends on the folder name: same inputs, byte-identical files.
    """

    def __init__(self, store: BucketStore, stage: layout.Stage, run_id: str, *, nonce: str | None = None) -> None:
        self.store = store
        self.stage = stage
        self.run_id = run_id
        self.nonce = nonce or secrets.token_hex(4)
        self.bucket_name = store.bucket_name
        self._folders: dict[str, layout.RunFolder] = {}  # stage prefix -> this execution's folder
        self._published: dict[str, int] = {}  # stage prefix -> generation of the manifest published

    def _snapshot_prefix(self, name: str) -> tuple[str, date] | None:
        head = f"{self.stage}/snapshot_date="
        if not name.startswith(head):
            return None
        day = name[len(head) : len(head) + 10]
        try:
            snapshot = date.fromisoformat(day)
        except ValueError:
            return None
        if name[len(head) + 10 : len(head) + 11] != "/":
            return None
        return layout.prefix(self.stage, snapshot), snapshot

    def begin(self, snapshot: date, base_generation: int) -> layout.RunFolder:
        """Start (or, after a lost race, restart) this execution's folder for ``snapshot`` from the
        manifest generation the caller read: a publish that merges with the stored manifest must
        write its files into a folder based on exactly the generation it merged with."""
        key = layout.prefix(self.stage, snapshot)
        self._folders[key] = layout.run_folder(self.stage, snapshot, self.run_id, base_generation, self.nonce)
        return self._folders[key]

    def folder(self, snapshot: date) -> layout.RunFolder:
        """This execution's run folder for ``snapshot`` (its base generation read on first use)."""
        key = layout.prefix(self.stage, snapshot)
        if key not in self._folders:
            base = self.store.generation(layout.manifest_name(self.stage, snapshot))
            self._folders[key] = layout.run_folder(self.stage, snapshot, self.run_id, base, self.nonce)
        return self._folders[key]

    def _scoped(self, name: str) -> str:
        """Where a data file ``name`` of this stage goes: into this execution's run folder."""
        scoped = self._snapshot_prefix(name)
        if scoped is None or name.endswith("/" + layout.MANIFEST):
            raise ValueError(f"{self.stage} may write only data files under its own prefix, not {name!r}")
        key, snapshot = scoped
        return self.folder(snapshot).path + name[len(key) :]

    def write(
        self, name: str, data: bytes, content_type: str, *, rows: int | None = None, table: str | None = None
    ) -> FileEntry:
        return self.store.write(self._scoped(name), data, content_type, rows=rows, table=table)

    def open_writer(self, name: str, content_type: str) -> AbstractContextManager[ObjectWriter]:
        """:meth:`BucketStore.open_writer` into this execution's run folder (as :meth:`write`)."""
        return self.store.open_writer(self._scoped(name), content_type)

    def write_manifest(self, manifest: Manifest, name: str) -> int:
        try:
            return self.publish_merged(name, manifest)
        except ConcurrentPublish:
            self.abandon(manifest.snapshot_date)
            raise

    def delete_stale(self, prefix: str, keep: set[str]) -> list[str]:
        published = self._published.get(prefix)
        if published is None:
            return []  # nothing published here by this execution: nothing of anyone else is touched
        mine = self._folders[prefix].path
        manifest = prefix + layout.MANIFEST
        removed = []
        for name in self.store.names(prefix):
            if name in keep or name == manifest or name.startswith(mine):
                continue
            folder = layout.parse_run_folder(name)
            if folder is not None and folder.base_generation >= published:
                continue  # began after this publish: it may still publish
            if self.store.delete(name):
                removed.append(name)
        if removed:
            log.info("removed %d objects of earlier or superseded executions under %s", len(removed), prefix)
        return removed

    def abandon(self, snapshot: date | None = None) -> list[str]:
        """Delete this execution's unpublished folders (all, or ``snapshot``'s): nothing partial stays."""
        removed = []
        for key, folder in list(self._folders.items()):
            if key in self._published or (snapshot is not None and key != layout.prefix(self.stage, snapshot)):
                continue
            for name in self.store.names(folder.path):
                if self.store.delete(name):
                    removed.append(name)
        return removed

    def publish_merged(self, name: str, manifest: Manifest) -> int:
        """Publish with ``ifGenerationMatch=<base>``; on a lost race nothing is abandoned (the caller
        merges again and retries; :meth:`write_manifest` abandons instead)."""
        ref = layout.parse_manifest_name(name)
        if ref is None or ref.stage != self.stage:
            raise ValueError(f"{self.stage} may publish only its own manifests, not {name!r}")
        base = self.folder(ref.snapshot_date).base_generation
        generation = self.store.write_manifest(manifest, name, if_generation_match=base)
        self._published[layout.prefix(self.stage, ref.snapshot_date)] = generation
        return generation

    def delete_unreferenced(self, snapshot: date, referenced: set[str]) -> list[str]:
        """After publishing ``snapshot``: delete the run folders that can never be published any more
        (based on an older generation) and hold no file that ``referenced`` names. A folder some
        stored manifest still lists is kept whole."""
        key = layout.prefix(self.stage, snapshot)
        published = self._published.get(key)
        if published is None:
            return []
        names = self.store.names(key)
        keep_folders = {f.path for n in referenced if (f := layout.parse_run_folder(n)) is not None}
        removed = []
        for obj in names:
            folder = layout.parse_run_folder(obj)
            if folder is None or folder.path in keep_folders or folder.base_generation >= published:
                continue
            if self.store.delete(obj):
                removed.append(obj)
        if removed:
            log.info("removed %d unreferenced objects of earlier executions under %s", len(removed), key)
        return removed

    # Reads go straight to the bucket.
    def read(self, name: str) -> bytes:
        return self.store.read(name)

    def read_verified(self, entry: FileEntry) -> bytes:
        return self.store.read_verified(entry)

    def read_manifest(self, name: str, generation: int | None = None) -> tuple[Manifest, int, str]:
        return self.store.read_manifest(name, generation)


__all__ = [
    "BucketStore",
    "ConcurrentPublish",
    "ManifestError",
    "ObjectMismatch",
    "ObjectWriter",
    "RunScopedStore",
    "StaleObject",
]
