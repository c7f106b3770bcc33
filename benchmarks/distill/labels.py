"""How much the soft labels say: where the teacher's top-1 differs from the base student's own.

KD can only teach the student where the teacher's distribution differs from the student's. With the
student's own base model as the teacher the two agree almost everywhere and KD says "stay as you are"
(the first experiment's reading); a teacher system adds information only through *which* answers it
keeps (the chosen's tokens) and, for `@context`, through the richer context its labels were computed
under. Measured per round on the complete rows, for each source: the share of soft-labelled chosen
tokens where the teacher's top-1 is not the base student's greedy token, the mean teacher probability of
its top-1, and the mean KL(teacher top-k + tail || student) in nats.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from engine.store import DatasetStore, Snapshot


def top1_disagreement(data_dir: Path, student: str, max_length: int) -> dict:
    import torch

    from trainer.config import TrainConfig
    from trainer.data import build_examples
    from trainer.student import load_tokenizer

    from .students import base_model

    with tempfile.TemporaryDirectory() as tmp, DatasetStore(data_dir, writable=False) as store:
        store.snapshot(Path(tmp) / "snap")
        snapshot = Snapshot(Path(tmp) / "snap")
        tokenizer = load_tokenizer(student)
        model = base_model(student)
        out = {}
        cached: dict[str, torch.Tensor] = {}  # row id -> the base student's log-probabilities on its chosen
        with_context = {r.row_id for r in snapshot.rows if r.chosen.context_logprobs is not None}
        for source in ("prompt", "context"):
            cfg = TrainConfig(student=student, soft_labels=source, max_length=max_length, kd_other_prompt=False)
            try:
                examples, report = build_examples(snapshot, tokenizer, cfg)
            except Exception as err:  # noqa: BLE001 - a dataset with nothing to label says so in the figures
                out[source] = {"rows": 0, "note": str(err)}
                continue
            tokens = differs = 0
            top1_prob = kl = 0.0
            rows = 0
            for ex in examples:
                if ex.kd is None or not ex.kd.mask.any():
                    continue
                if source == "context" and ex.row_id not in with_context:
                    continue
                rows += 1
                if ex.row_id not in cached:
                    ids = torch.tensor([ex.prompt_ids + ex.chosen_ids])
                    with torch.no_grad():
                        logits = model(ids).logits[0].float()
                    start = len(ex.prompt_ids) - 1  # the position that predicts the first chosen token
                    cached[ex.row_id] = torch.log_softmax(logits[start:start + len(ex.kd.mask)], dim=-1)
                student_logps = cached[ex.row_id]
                mask = torch.from_numpy(ex.kd.mask)
                teacher_ids = torch.from_numpy(ex.kd.ids[:, 0])
                teacher_logps = torch.from_numpy(ex.kd.logps)
                differs += int(((student_logps.argmax(-1) != teacher_ids) & mask).sum())
                tokens += int(mask.sum())
                top1_prob += float(teacher_logps[:, 0].exp()[mask].sum())
                kl += float(_topk_kl(teacher_logps, torch.from_numpy(ex.kd.ids), student_logps)[mask].sum())
            out[source] = {"rows": rows, "tokens": tokens, "top1_differs": differs / tokens if tokens else None,
                           "teacher_top1_prob": top1_prob / tokens if tokens else None,
                           "kl_nats": kl / tokens if tokens else None}
        return out


def _topk_kl(teacher_logps, teacher_ids, student_logps):
    """KL over the teacher's top-k and one tail bucket (as `trainer.loss` computes it), per position."""
    import torch

    valid = teacher_ids >= 0
    p = torch.where(valid, teacher_logps.exp(), torch.zeros_like(teacher_logps))
    q_log = torch.gather(student_logps, -1, teacher_ids.clamp(min=0))
    q = torch.where(valid, q_log.exp(), torch.zeros_like(q_log))
    p_tail = (1 - p.sum(-1)).clamp(min=1e-12)
    q_tail = (1 - q.sum(-1)).clamp(min=1e-12)
    head = torch.where(valid & (p > 0), p * (teacher_logps - q_log), torch.zeros_like(p)).sum(-1)
    return head + p_tail * (p_tail.log() - q_tail.log())
