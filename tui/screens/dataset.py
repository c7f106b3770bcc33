"""The dataset: rows by session and step, a filter, counts by kind, a row's prompt / chosen / rejected
side by side, the chosen coloured by the teacher's token probabilities, and curation: a row the user
finds wrong is excluded from training and export (recorded with its reason, undone by the same key;
nothing is deleted)."""

from __future__ import annotations

import datetime as _dt

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.color import Color
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from engine.errors import ShakeError
from engine.execution.sanitize import sanitize
from engine.store.export import export_dataset
from tui.row_view import RowFilter, RowView
from tui.session_view import plural
from tui.widgets.token_view import legend, probability_text


class RowTable(DataTable):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="dataset.down"),
        Binding("k", "cursor_up", "Up", show=False, id="dataset.up"),
        Binding("g", "scroll_top", "Top", show=False, id="dataset.top"),
        Binding("G", "scroll_bottom", "Bottom", show=False, id="dataset.bottom"),
    ]


class DatasetScreen(Screen):
    BINDINGS = [
        Binding("slash", "filter", "Filter", id="dataset.filter"),
        Binding("escape", "clear_filter", "Clear filter", id="dataset.clear_filter", show=False),
        Binding("x", "toggle_excluded", "Exclude", tooltip="Exclude the row from training, or bring it back",
                id="dataset.toggle_excluded"),
        Binding("c", "toggle_colours", "Colours", tooltip="The chosen coloured by the teacher's token probabilities",
                id="dataset.token_colours"),
        Binding("r", "reload", "Reload", id="dataset.reload", show=False),
        Binding("e", "export", "Export", tooltip="Export the dataset as JSONL", id="dataset.export"),
    ]

    def __init__(self) -> None:
        super().__init__(id="dataset-screen")
        self.rows: list[RowView] = []
        self.shown: list[RowView] = []
        self.filter = RowFilter()
        self.colours = False
        self.current: RowView | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="dataset-body"):
            yield Static("", id="dataset-counts", classes="pane-title")
            filter_box = Input(placeholder="filter: session:ID agent:lead kind:redo teacher:NAME step:2 words… "
                                           "(Enter applies, Esc clears)", id="dataset-filter")
            yield filter_box
            yield RowTable(id="rows", cursor_type="row", zebra_stripes=True)
            with Horizontal(id="row-detail"):
                for part in ("prompt", "chosen", "rejected"):
                    with VerticalScroll(classes="detail-pane", id=f"pane-{part}"):
                        yield Static(part, classes="pane-title", id=f"title-{part}")
                        yield Static("", id=f"detail-{part}")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one(RowTable)
        # "training" before the teacher and the logprobs: at 80 columns the last columns are cut, and
        # whether a row is in or excluded is what `x` changes (a teacher's name can be long)
        table.add_columns("session", "step", "cycle", "agent", "rejected", "chosen", "training", "teacher", "logprobs")
        self.action_reload()
        table.focus()

    def on_screen_resume(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        store = self.app.store
        self.rows = [RowView.of(row) for row in store.rows()]
        self.show_counts()
        self.fill(keep_cursor=True)

    def fill(self, keep_cursor: bool = False) -> None:
        """Show the rows that match the filter. Rows are keyed by their id, not their place: a row whose
        session changed moves in the store's order, and the cursor must stay on the row it was on."""
        table = self.query_one(RowTable)
        keep = self.current.row_id if keep_cursor and self.current is not None else None
        table.clear()
        self.shown = [row for row in self.rows if self.filter.matches(row)]
        for row in self.shown:
            table.add_row(row.session_id, str(row.step_number) if row.step_number else "plan", str(row.cycle),
                          row.agent, row.rejected_kind or "—", "yes" if row.accepted else "pending",
                          Text(f"excluded: {row.excluded}", style="bold") if row.excluded else "in", row.teacher,
                          str(row.logprob_tokens) if row.logprob_tokens else "—", key=row.row_id)
        if not self.filter.empty:
            self.query_one("#dataset-counts", Static).update(Text(
                f"{plural(len(self.shown), 'row')} of {len(self.rows)} match the filter (Esc clears it)"))
        if self.shown:
            ids = [row.row_id for row in self.shown]
            cursor = ids.index(keep) if keep in ids else 0
            table.move_cursor(row=cursor)
            self.show_row(self.shown[cursor])
        else:
            self.current = None
            for part in ("prompt", "chosen", "rejected"):
                self.query_one(f"#detail-{part}", Static).update("")

    @on(DataTable.RowHighlighted)
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        row = next((r for r in self.shown if r.row_id == event.row_key.value), None) if event.row_key else None
        if row is not None:
            self.show_row(row)

    def show_row(self, row: RowView) -> None:
        self.current = row
        rejected = (f"[{row.rejected_kind}]\n{sanitize(row.rejected)}" if row.rejected_kind
                    else "(none: accepted on the first cycle)")
        self.query_one("#detail-prompt", Static).update(Text(sanitize(row.prompt)))
        self.query_one("#detail-rejected", Static).update(Text(rejected))
        self.show_chosen()

    def show_chosen(self) -> None:
        row = self.current
        title = self.query_one("#title-chosen", Static)
        detail = self.query_one("#detail-chosen", Static)
        if row is None:
            return
        if not row.accepted:
            title.update("chosen")
            detail.update(Text("(not accepted yet)"))
            return
        if self.colours and row.logprobs_blob:
            theme = self.app.current_theme
            low, high = Color.parse(theme.error or "red"), Color.parse(theme.success or "green")
            try:
                tokens = self.app.store.get_logprobs(row.logprobs_blob)
            except ShakeError as err:
                detail.update(Text(f"{err}\n\n{sanitize(row.chosen)}"))
                return
            title.update(legend(low, high))
            detail.update(probability_text(tokens, low, high))
            return
        title.update("chosen" + ("" if row.logprobs_blob else " (hard label: no teacher log-probabilities)"))
        detail.update(Text(sanitize(row.chosen)))

    def action_toggle_excluded(self) -> None:
        """Leave the row under the cursor out of training and export, or bring it back."""
        row = self.current
        if row is None:
            self.app.notify("No row to exclude", severity="warning")
            return
        exclude = not row.excluded
        try:
            self.app.store.set_excluded([row.row_id], exclude, "excluded in the app" if exclude else "")
        except ShakeError as err:
            self.app.notify(str(err), severity="error")
            return
        self.app.notify(f"Row {row.row_id} {'excluded from' if exclude else 'back in'} training and export"
                        + (" (x brings it back)" if exclude else ""))
        self.rows = [RowView.of(r) for r in self.app.store.rows()]
        self.show_counts()
        self.fill(keep_cursor=True)

    def show_counts(self) -> None:
        stats = self.app.store.stats()
        if self.filter.empty:
            kinds = ", ".join(f"{k} {v}" for k, v in stats.by_kind.items())
            self.query_one("#dataset-counts", Static).update(Text(
                f"{plural(stats.rows, 'row')} in {plural(stats.sessions, 'session')} · {stats.complete_rows} complete · "
                f"{stats.pending_rows} pending · {stats.excluded_rows} excluded · rejected: {kinds} · "
                f"{stats.with_logprobs} with logprobs"))

    def action_toggle_colours(self) -> None:
        self.colours = not self.colours
        if self.colours and self.current is not None and not self.current.logprobs_blob:
            self.app.notify("This row's chosen has no teacher log-probabilities to colour", severity="warning")
        self.show_chosen()

    def action_filter(self) -> None:
        self.query_one("#dataset-filter", Input).focus()

    @on(Input.Submitted, "#dataset-filter")
    def apply_filter(self, event: Input.Submitted) -> None:
        self.filter = RowFilter.parse(event.value)
        self.fill()
        self.query_one(RowTable).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#dataset-filter", Input)
        if box.value or not self.filter.empty:
            box.value = ""
            self.filter = RowFilter()
            self.fill()
        self.query_one(RowTable).focus()

    def action_export(self) -> None:
        out_dir = self.app.config.data_dir / "exports"
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / f"dataset-{_dt.datetime.now():%Y%m%d-%H%M%S}.jsonl"
        try:
            report = export_dataset(self.app.store, out)
        except ShakeError as err:
            self.app.notify(str(err), severity="error")
            return
        left_out = f" ({plural(report.excluded, 'excluded row')} left out)" if report.excluded else ""
        self.app.notify(f"Exported {plural(report.rows, 'row')} to {out}{left_out}")
