"""Export the dataset in the column layout TRL's ORPO/DPO trainers read.

Columns: `prompt` (chat messages), `chosen` and `rejected` (one assistant message each, the
conversational format TRL accepts), plus `chosen_logprobs` (token log-probabilities, JSON-safe),
`rejected_kind` and provenance columns. Rows whose step was never accepted have no `chosen` and are
left out; `paired_only` also leaves out rows without a `rejected` (what ORPO/DPO need).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from engine.errors import InputError
from engine.store.atomic import atomic_write_text
from engine.store.store import DatasetStore

FORMATS = ("jsonl", "parquet")


def export_records(store: DatasetStore, *, paired_only: bool = False) -> list[dict[str, Any]]:
    records = []
    for row in store.rows():
        chosen = row.get("chosen")
        rejected = row.get("rejected")
        if not chosen or (paired_only and not rejected):
            continue
        lp = chosen.get("logprobs")
        records.append(
            {
                "prompt": row["prompt"]["messages"],
                "chosen": [{"role": "assistant", "content": chosen["text"]}],
                "rejected": [{"role": "assistant", "content": rejected["text"]}] if rejected else None,
                "chosen_logprobs": store.get_logprobs(lp["blob"]).to_json() if lp else None,
                "rejected_kind": rejected["kind"] if rejected else None,
                "session_id": row["session_id"],
                "step_index": row["step_index"],
                "row_id": row["row_id"],
                "chosen_teacher": chosen.get("teacher"),
                "rejected_teacher": rejected.get("teacher") if rejected else None,
            }
        )
    return records


def jsonl_lines(records: list[dict[str, Any]]) -> Iterator[str]:
    """One JSON object per line, the layout `datasets.load_dataset("json", ...)` and TRL read as it is."""
    for record in records:
        yield json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n"


def export_dataset(store: DatasetStore, out: Path, fmt: str = "jsonl", *, paired_only: bool = False) -> int:
    if fmt not in FORMATS:
        raise InputError(f"unknown export format '{fmt}'; use one of: {', '.join(FORMATS)}")
    out = Path(out)
    if out.is_dir():
        raise InputError(f"{out} is a directory; --out takes a file name")
    if not out.parent.exists():
        raise InputError(f"the directory {out.parent} does not exist")
    records = export_records(store, paired_only=paired_only)
    if fmt == "jsonl":
        atomic_write_text(out, "".join(jsonl_lines(records)))
    else:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise InputError("Parquet export needs pyarrow: pip install pyarrow (JSONL needs nothing)") from None
        # Nested, variable columns go in as JSON strings so that every row shares one schema.
        flat = [
            {k: (json.dumps(v) if isinstance(v, (list, dict)) or v is None and k != "rejected_kind" else v)
             for k, v in r.items()}
            for r in records
        ]
        tmp = out.with_name(f".{out.name}.tmp")
        pq.write_table(pa.Table.from_pylist(flat), tmp)
        tmp.replace(out)
    return len(records)


def export_hf(store: DatasetStore, out: Path, *, paired_only: bool = False) -> int:
    """The same records as a Hugging Face `datasets` directory (`Dataset.save_to_disk`)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out} is not empty; choose a new directory")
    try:
        from datasets import Dataset
    except ImportError:
        raise InputError("--hf needs the `datasets` package: pip install datasets") from None
    records = export_records(store, paired_only=paired_only)
    if not records:
        raise InputError("the dataset has no complete rows to export yet")
    Dataset.from_list(records).save_to_disk(str(out))
    return len(records)
