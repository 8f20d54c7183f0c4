"""The data bucket, through google-cloud-storage."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spotify_pipeline.manifest import FileEntry, Manifest, ManifestError, sha256_hex

if TYPE_CHECKING:
    import google.cloud.storage as storage


class StaleObject(Exception):
    """The object changed since the event was emitted: a newer write supersedes this event."""


class BucketStore:
    def __init__(self, client: storage.Client, bucket: str) -> None:
        self._client = client
        self.bucket_name = bucket
        self._bucket = client.bucket(bucket)

    def write(
        self, name: str, data: bytes, content_type: str, *, rows: int | None = None, table: str | None = None
    ) -> FileEntry:
        self._bucket.blob(name).upload_from_string(data, content_type=content_type)
        return FileEntry(name=name, sha256=sha256_hex(data), bytes=len(data), rows=rows, table=table)

    def write_manifest(self, manifest: Manifest, name: str) -> int:
        blob = self._bucket.blob(name)
        blob.upload_from_string(manifest.to_bytes(), content_type="application/json")
        return int(blob.generation or 0)

    def read(self, name: str) -> bytes:
        data: bytes = self._bucket.blob(name).download_as_bytes()
        return data

    def read_verified(self, entry: FileEntry) -> bytes:
        """Read a file listed in a manifest; a checksum mismatch means a newer run overwrote it."""
        from google.api_core.exceptions import NotFound

        try:
            data = self.read(entry.name)
        except NotFound:
            raise StaleObject(f"gs://{self.bucket_name}/{entry.name} listed in the manifest no longer exists") from None
        if sha256_hex(data) != entry.sha256:
            raise StaleObject(f"gs://{self.bucket_name}/{entry.name} changed since its manifest was written")
        return data

    def read_manifest(self, name: str, generation: int | None = None) -> tuple[Manifest, int, str]:
        """The manifest at ``generation`` (the event's), with its generation and checksum.

        Reading pins the generation, so an older event can never act on a newer manifest's
        content, and a superseded one raises :class:`StaleObject`.
        """
        from google.api_core.exceptions import NotFound

        blob = self._bucket.get_blob(name)
        if blob is None:
            raise StaleObject(f"gs://{self.bucket_name}/{name} no longer exists")
        current = int(blob.generation or 0)
        if generation is not None and current != generation:
            raise StaleObject(f"gs://{self.bucket_name}/{name}#{generation} was superseded by generation {current}")
        try:
            data = blob.download_as_bytes(if_generation_match=current)
        except NotFound:
            raise StaleObject(f"gs://{self.bucket_name}/{name} was deleted while being read") from None
        manifest = Manifest.from_bytes(data, f"gs://{self.bucket_name}/{name}#{current}")
        return manifest, current, sha256_hex(data)

    def names(self, prefix: str) -> list[str]:
        return sorted(b.name for b in self._client.list_blobs(self.bucket_name, prefix=prefix))

    def delete_stale(self, prefix: str, keep: set[str]) -> list[str]:
        """Delete objects under ``prefix`` that the new manifest does not list (an earlier run's)."""
        removed = [name for name in self.names(prefix) if name not in keep]
        for name in removed:
            self._bucket.blob(name).delete()
        return removed


__all__ = ["BucketStore", "ManifestError", "StaleObject"]
