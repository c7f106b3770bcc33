"""Export the dataset for other trainers: TRL's preference layout, and Axolotl's KD layout.

**TRL** (`jsonl`, `parquet`, `--hf`): `prompt` (chat messages), `chosen` and `rejected` (one assistant
message each, the conversational format TRL's ORPO/DPO trainers read), plus `chosen_logprobs` (token
log-probabilities, JSON-safe), `logprobs_match_prompt` (were they computed under this prompt), `agent`,
`rejected_kind` and provenance columns. Rows whose step was never accepted have no `chosen` and are
left out, and so are rows the user excluded (counted in the report); `paired_only` also leaves out rows
without a `rejected` (what ORPO/DPO need).

**Axolotl** (`axolotl`): the dataset type `axolotl.integrations.kd.chat_template`, which loads the v2
strategy (`src/axolotl/integrations/kd/chat_template.py`: `load = KDStrategyLoaderV2()`,
`ChatTemplateStrategyWithKDv2`; read at axolotl-ai-cloud/axolotl 067b021, v0.18.0-9): one record per
accepted step, `messages` = the prompt plus the chosen as the assistant turn, `logprobs` = one list of
floats per position and `target_token_ids` = the student-vocabulary ids they belong to, the same width
(the teacher's top-k) at every position: the plugin cuts every position to the commonest width
(`top_k = min(max_top_k, min_top_k)`), so one narrow position would shrink them all. It puts the lists
on the *last* `len(logprobs)` positions of the tokenized conversation (`input_padding_len =
len(input_ids) - len(logprobs)`): the response's positions, then the tokens the student's chat template
adds after an assistant turn. The chosen is tokenized by the student, and the teacher's soft labels are
carried over by bytes exactly as `shake train` aligns them (`engine/align.py`), so a grammar-constrained
answer whose fixed words the teacher spelled in other pieces keeps its soft labels. A position without
soft labels (the closing tokens, an unlabelled span, a token no teacher token covers) is the one-hot of
its token: log-probability 0 for it and `NO_MASS` for filler ids; `NO_MASS` stays finite through the
plugin's exp/normalize/log, where -inf or -1e9 would become -inf and make its KL term 0 * inf = nan
(`topk_logprob/forward_kl.py`). Steps with no position the teacher labelled are left out and counted.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, TextIO

import numpy as np

from engine.errors import InputError, StoreError
from engine.store.atomic import atomic_write_text
from engine.store.codec import encode
from engine.store.schema import Row
from engine.store.store import DatasetStore

FORMATS = ("jsonl", "parquet", "axolotl")


@dataclass
class ExportReport:
    rows: int
    excluded: int = 0
    without_soft_labels: int = 0  # axolotl: steps left out (no usable soft labels)


def _rows(store: DatasetStore) -> tuple[list[Row], int]:
    rows, excluded = [], 0
    for row in store.rows():
        if row.chosen is None:
            continue
        if row.excluded is not None:
            excluded += 1
            continue
        rows.append(row)
    return rows, excluded


def export_records(store: DatasetStore, *, paired_only: bool = False) -> tuple[list[dict[str, Any]], int]:
    rows, excluded = _rows(store)
    records = []
    for row in rows:
        chosen, rejected = row.chosen, row.rejected
        if paired_only and rejected is None:
            continue
        lp = chosen.logprobs
        records.append(
            {
                "prompt": row.prompt.chat(),
                "chosen": [{"role": "assistant", "content": chosen.text}],
                "rejected": [{"role": "assistant", "content": rejected.text}] if rejected else None,
                "chosen_logprobs": store.get_logprobs(lp.blob).to_json() if lp else None,
                "logprobs_match_prompt": row.soft_labels_match_prompt,
                "agent": row.agent.value,
                "rejected_kind": rejected.kind.value if rejected else None,
                "session_id": row.session_id,
                "step_index": row.step_index,
                "row_id": row.row_id,
                "chosen_teacher": encode(chosen.teacher),
                "chosen_origin": chosen.origin.value,
                "logprobs_scorer": encode(lp.scorer) if lp else None,
                "rejected_teacher": encode(rejected.teacher) if rejected else None,
            }
        )
    return records, excluded


def _check_out(out: Path) -> Path:
    out = Path(out)
    if out.is_dir():
        raise InputError(f"{out} is a directory; --out takes a file name")
    if not out.parent.exists():
        raise InputError(f"the directory {out.parent} does not exist")
    return out


def jsonl_lines(records: list[dict[str, Any]]) -> Iterator[str]:
    """One JSON object per line, the layout `datasets.load_dataset("json", ...)` and TRL read as it is."""
    for record in records:
        yield json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n"


def _jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(jsonl_lines(records))


def export_dataset(store: DatasetStore, out: Path | None, fmt: str = "jsonl", *, paired_only: bool = False,
                   tokenizer=None, stdout: TextIO | None = None) -> ExportReport:
    """Write the export to `out`, or JSONL to `stdout` when `out` is None."""
    if fmt not in FORMATS:
        raise InputError(f"unknown export format '{fmt}'; use one of: {', '.join(FORMATS)}")
    if fmt == "axolotl":
        if tokenizer is None:
            raise InputError("the axolotl format needs the student's tokenizer (--student)")
        records, report = axolotl_records(store, tokenizer)
    else:
        records, excluded = export_records(store, paired_only=paired_only)
        report = ExportReport(len(records), excluded)
    if out is None:
        if fmt == "parquet":
            raise InputError("Parquet is binary: give --out FILE (JSONL can go to standard output)")
        stream = stdout or sys.stdout
        for line in jsonl_lines(records):
            stream.write(line)
        stream.flush()
        return report
    out = _check_out(out)
    if fmt != "parquet":
        atomic_write_text(out, _jsonl(records))
        return report
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("Parquet export needs pyarrow: pip install pyarrow (JSONL needs nothing)") from None
    # Nested, variable columns go in as JSON strings so that every row shares one schema.
    flat = [
        {k: (json.dumps(v) if isinstance(v, (list, dict)) or v is None and k not in ("rejected_kind",) else v)
         for k, v in r.items()}
        for r in records
    ]
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        pq.write_table(pa.Table.from_pylist(flat), tmp)
        tmp.replace(out)
    except OSError as err:  # a read-only directory, a full disk: the file is not there, and no part of it
        tmp.unlink(missing_ok=True)
        raise StoreError(f"could not write {out}: {err.strerror or err}") from None
    return report


def export_hf(store: DatasetStore, out: Path, *, paired_only: bool = False) -> ExportReport:
    """The same records as a Hugging Face `datasets` directory (`Dataset.save_to_disk`)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out} is not empty; choose a new directory")
    try:
        from datasets import Dataset
    except ImportError:
        raise InputError("--hf needs the `datasets` package: pip install datasets") from None
    records, excluded = export_records(store, paired_only=paired_only)
    if not records:
        raise InputError("the dataset has no complete rows to export yet")
    try:
        Dataset.from_list(records).save_to_disk(str(out))
    except OSError as err:  # a full disk, a read-only directory: said with the directory, not as a bug
        raise StoreError(f"could not write the dataset to {out}: {err.strerror or err}; what was written there "
                         "is incomplete") from None
    return ExportReport(len(records), excluded)


NO_MASS = -50.0  # a filler candidate's log-probability: ~2e-22, finite after Axolotl's exp/normalize/log


def axolotl_records(store: DatasetStore, tokenizer) -> tuple[list[dict[str, Any]], ExportReport]:
    from engine.tokens import StudentVocab

    vocab = StudentVocab(tokenizer)
    rows, excluded = _rows(store)
    seen: set[tuple[str, int, str]] = set()
    records, without = [], 0
    for row in rows:
        key = (row.session_id, row.step_index, row.agent.value if not row.is_worker else "worker")
        if row.is_worker and key in seen:  # the worker rows of a step share one prompt and chosen
            continue
        seen.add(key)
        lp = row.chosen.logprobs
        teacher = store.get_logprobs(lp.blob) if lp and row.soft_labels_match_prompt else None
        positions = _positions(teacher, row, tokenizer, vocab) if teacher is not None and teacher.k else None
        if positions is None:
            without += 1
            continue
        messages = row.prompt.chat() + [{"role": "assistant", "content": row.chosen.text}]
        logprobs, target_ids = positions
        records.append({"messages": messages, "logprobs": logprobs, "target_token_ids": target_ids,
                        "session_id": row.session_id, "step_index": row.step_index, "agent": row.agent.value})
    return records, ExportReport(len(records), excluded, without)


def _positions(teacher, row: Row, tokenizer, vocab) -> tuple[list[list[float]], list[list[int]]] | None:
    """Per position from the first response token to the end of the conversation: the top-k log-probabilities
    and their student ids, all `teacher.k` wide. None when no position carries the teacher's soft labels."""
    from engine.align import align

    prompt = row.prompt.chat()
    full = _ids(tokenizer.apply_chat_template(prompt + [{"role": "assistant", "content": row.chosen.text}],
                                              tokenize=True))
    head = _ids(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True))
    if full[: len(head)] != head:
        return None
    tail = full[len(head):]
    response = _response_tokens(tail, row.chosen.text.encode("utf-8"), vocab)
    kd = align(teacher, response, vocab)  # the trainer's own alignment: ids where they match, else bytes
    if not kd.mask.any():
        return None
    k = teacher.k
    logprobs, target_ids = [], []
    for j, token in enumerate(tail):
        if j < len(response) and kd.mask[j]:
            pairs = [(int(i), float(v)) for i, v in zip(kd.ids[j], kd.logps[j]) if i >= 0 and np.isfinite(v)]
        else:
            pairs = [(int(token), 0.0)]
        ids = [i for i, _ in pairs]
        fillers = (i for i in range(vocab.size) if i not in ids)
        pairs += [(next(fillers), NO_MASS) for _ in range(k - len(pairs))]
        logprobs.append([v for _, v in pairs])
        target_ids.append([i for i, _ in pairs])
    return logprobs, target_ids


def _response_tokens(tail: list[int], text: bytes, vocab) -> list[int]:
    """The leading tokens of the assistant turn that spell the chosen's text (the rest is the template's
    closing; a token that runs from the text into it is left to the closing, as one-hot)."""
    out, pos = [], 0
    for token in tail:
        piece = vocab.pieces[token]
        if pos >= len(text) or not piece or text[pos: pos + len(piece)] != piece:
            break
        out.append(token)
        pos += len(piece)
    return out


def _ids(out) -> list[int]:
    return list(out["input_ids"]) if isinstance(out, dict) or hasattr(out, "keys") else list(out)
