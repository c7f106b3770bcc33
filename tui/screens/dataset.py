"""The dataset: rows by session and step, counts by kind, a row's prompt / chosen / rejected side by side."""

from __future__ import annotations

import datetime as _dt

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from engine.errors import ShakeError
from engine.store.export import export_dataset


class RowTable(DataTable):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="dataset.down"),
        Binding("k", "cursor_up", "Up", show=False, id="dataset.up"),
        Binding("g", "scroll_top", "Top", show=False, id="dataset.top"),
        Binding("G", "scroll_bottom", "Bottom", show=False, id="dataset.bottom"),
    ]


class DatasetScreen(Screen):
    BINDINGS = [
        Binding("r", "reload", "Reload", id="dataset.reload"),
        Binding("e", "export", "Export JSONL", id="dataset.export"),
    ]

    def __init__(self) -> None:
        super().__init__(id="dataset-screen")
        self.rows: list[dict] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="dataset-body"):
            yield Static("", id="dataset-counts", classes="pane-title")
            yield RowTable(id="rows", cursor_type="row", zebra_stripes=True)
            with Horizontal(id="row-detail"):
                for part in ("prompt", "chosen", "rejected"):
                    with VerticalScroll(classes="detail-pane"):
                        yield Static(part, classes="pane-title")
                        yield Static("", id=f"detail-{part}")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(RowTable)
        table.add_columns("session", "step", "cycle", "rejected", "chosen", "teacher", "logprobs")
        self.action_reload()

    def on_screen_resume(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        store = self.app.store
        self.rows = list(store.rows())
        stats = store.stats()
        kinds = ", ".join(f"{k} {v}" for k, v in stats.by_kind.items())
        self.query_one("#dataset-counts", Static).update(Text(
            f"{stats.rows} rows in {stats.sessions} sessions · {stats.complete_rows} complete · "
            f"{stats.pending_rows} pending · rejected: {kinds} · {stats.with_logprobs} with logprobs"))
        table = self.query_one(RowTable)
        table.clear()
        for i, row in enumerate(self.rows):
            chosen, rejected = row.chosen, row.rejected
            identity = (chosen or rejected).teacher if (chosen or rejected) else None
            teacher = identity.name if identity else ("user" if chosen else "")
            table.add_row(row.session_id, str(row.step_index + 1), str(row.cycle),
                          rejected.kind.value if rejected else "—", "yes" if chosen else "pending", teacher,
                          str(chosen.logprobs.n_tokens) if chosen and chosen.logprobs else "—", key=str(i))
        if self.rows:
            self.show_row(0)

    @on(DataTable.RowHighlighted)
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key and event.row_key.value is not None:
            self.show_row(int(event.row_key.value))

    def show_row(self, index: int) -> None:
        row = self.rows[index]
        prompt = row.prompt.messages[-1].content if row.prompt.messages else ""
        chosen = row.chosen.text if row.chosen else "(not accepted yet)"
        rejected = row.rejected
        rejected_text = f"[{rejected.kind}]\n{rejected.text}" if rejected else "(none: accepted on the first cycle)"
        for part, text in (("prompt", prompt), ("chosen", chosen), ("rejected", rejected_text)):
            self.query_one(f"#detail-{part}", Static).update(Text(text))

    def action_export(self) -> None:
        out_dir = self.app.config.data_dir / "exports"
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / f"dataset-{_dt.datetime.now():%Y%m%d-%H%M%S}.jsonl"
        try:
            n = export_dataset(self.app.store, out).rows
        except ShakeError as err:
            self.app.notify(str(err), severity="error")
            return
        self.app.notify(f"Exported {n} rows to {out}")
