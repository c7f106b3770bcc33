"""The DORPO dataset store: typed rows and session state (`schema.py`), on disk (`store.py`)."""

from engine.store.store import (
    REJECTED_KINDS,
    BadFile,
    DatasetStats,
    DatasetStore,
    Snapshot,
    SnapshotInfo,
)

__all__ = ["BadFile", "DatasetStats", "DatasetStore", "Snapshot", "SnapshotInfo", "REJECTED_KINDS"]
