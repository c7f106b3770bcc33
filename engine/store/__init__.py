"""The DORPO dataset store: rows, session state and log-probability blobs (see `store.py`)."""

from engine.store.store import DatasetStats, DatasetStore, Snapshot, SnapshotInfo, REJECTED_KINDS

__all__ = ["DatasetStats", "DatasetStore", "Snapshot", "SnapshotInfo", "REJECTED_KINDS"]
