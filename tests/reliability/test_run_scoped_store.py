"""The concurrency rule of the bucket (store.RunScopedStore) against the GCS emulator: one
publisher per base generation, and a cleanup that never deletes what may still be published."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from helpers import gcs

from spotify_pipeline import layout
from spotify_pipeline.manifest import Manifest
from spotify_pipeline.store import BucketStore, ConcurrentPublish, RunScopedStore

pytestmark = pytest.mark.emulators
DAY = date(2023, 5, 1)


def _manifest(run_id: str, files: tuple[Any, ...]) -> Manifest:
    return Manifest(stage="transform", snapshot_date=DAY, run_id=run_id, started_at="t0", finished_at="t1", files=files)


def _names(store: BucketStore) -> list[str]:
    return store.names(layout.prefix("transform", DAY))


def test_one_publisher_per_base_and_a_cleanup_that_spares_later_executions(stack: Any) -> None:
    store = BucketStore(gcs(stack), "spotify-pipeline-local")
    name = layout.manifest_name("transform", DAY)
    prefix = layout.prefix("transform", DAY)
    a, b = RunScopedStore(store, "transform", "run-a"), RunScopedStore(store, "transform", "run-b")
    fa = a.write(prefix + "tracks.parquet", b"A", "application/octet-stream", rows=1, table="tracks")
    fb = b.write(prefix + "tracks.parquet", b"B", "application/octet-stream", rows=1, table="tracks")
    assert fa.name != fb.name and fa.name.startswith(a.folder(DAY).path)  # never the same object
    generation = b.publish(_manifest("run-b", (fb,)))
    assert store.generation(name) == generation
    assert fa.name not in _names(store)  # B's cleanup: A began before B published, it can never publish
    fa2 = a.write(prefix + "artists.parquet", b"A2", "application/octet-stream")  # A, still running, writes on
    with pytest.raises(ConcurrentPublish):
        a.publish(_manifest("run-a", (fa, fa2)))  # same base: its precondition fails
    assert fa2.name not in _names(store)  # the loser's folder is gone at once
    # An execution that began after B published (its base is B's generation) is left alone by B's
    # cleanup; one that began before (base 0, like A) can never publish and is removed.
    c = RunScopedStore(store, "transform", "run-c")
    fc = c.write(prefix + "tracks.parquet", b"C", "application/octet-stream")
    stale = RunScopedStore(store, "transform", "run-d")
    stale._folders[prefix] = layout.run_folder("transform", DAY, "run-d", 0, "deadbeef")  # began before B
    fd = stale.write(prefix + "tracks.parquet", b"D", "application/octet-stream")
    assert c.folder(DAY).base_generation == generation
    assert b.delete_unpublishable(DAY) == [fd.name]
    assert set(_names(store)) == {fb.name, fc.name, name}
    # C publishes over B, and its cleanup (part of publishing) removes B's folder.
    c.publish(_manifest("run-c", (fc,)))
    assert set(_names(store)) == {fc.name, name}
    assert c.delete_unpublishable(DAY) == []
    with pytest.raises(ValueError, match="only data files under its own prefix"):
        c.write("recommend/snapshot_date=2023-05-01/x.parquet", b"x", "application/octet-stream")
