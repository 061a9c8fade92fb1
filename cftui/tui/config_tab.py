"""The config tab: the gateway's openclaw.json, credentials masked; edit,
validate, save, revert to the known-good copy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static, TextArea

from cftui.errors import CftuiError
from cftui.inert import inert_json_text
from cftui.tui.formatting import agent_text

if TYPE_CHECKING:
    from textual import getters

    from cftui.tui.app import ClawFactoryApp


def unmask(edited: Any, original: Any, mask: str) -> Any:
    """Put back the secrets the view masked, wherever the operator left the mask."""
    if isinstance(edited, dict) and isinstance(original, dict):
        return {k: unmask(v, original.get(k), mask) for k, v in edited.items()}
    if isinstance(edited, list) and isinstance(original, list):
        return [
            unmask(v, original[i] if i < len(original) else None, mask)
            for i, v in enumerate(edited)
        ]
    if edited == mask and isinstance(original, str):
        return original
    return edited


class ConfigTab(Vertical):
    """Edit in place; nothing is written until it validates."""

    if TYPE_CHECKING:  # Textual types self.app as App[object]
        app = getters.app(ClawFactoryApp)

    DEFAULT_CSS = """
    ConfigTab { height: 1fr; }
    ConfigTab #config-status { height: auto; padding: 0 1; color: $text-muted; }
    ConfigTab #config-status.-error { color: $error; text-style: bold; }
    ConfigTab TextArea { height: 1fr; }
    """

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="config.save", tooltip="Validate and write"),
        Binding("f3", "validate", "Validate", id="config.validate", tooltip="Check, write nothing"),
        Binding(
            "f4", "revert", "Revert", id="config.revert", tooltip="Back to the known-good config"
        ),
        Binding("f5", "reload", "Reload", id="config.reload", tooltip="Discard edits, read again"),
    ]

    def __init__(self, bot: str) -> None:
        super().__init__()
        self.bot = bot
        self._started = False
        self._original: dict[str, Any] | None = None
        self._loaded_text: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="config-status")
        yield TextArea("", language="json", id="config-text", show_line_numbers=True)

    def activate(self) -> None:
        if not self._started:
            self._started = True
            self.action_reload()
        self.query_one(TextArea).focus()

    def _status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#config-status", Static)
        status.update(agent_text(text))  # errors quote the gateway's own file
        status.set_class(error, "-error")

    def action_reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="config", exit_on_error=False)
    def _load(self) -> None:
        from cftui.gateway import config as gc

        try:
            data = gc.read_config(self.app.home, self.bot)
            # The gateway wrote this file: what JSON leaves raw (C1, bidi) is
            # escaped, which parses back to the same config when saved.
            text = inert_json_text(gc.dumps(gc.mask_secrets(data)))
        except CftuiError as exc:
            self.app.call_from_thread(self._status, str(exc), True)
            return
        self.app.call_from_thread(
            self._loaded, data, text, str(gc.config_path(self.app.home, self.bot))
        )

    def _loaded(self, data: dict[str, Any], text: str, path: str) -> None:
        self._original = data
        self._loaded_text = text
        self.query_one(TextArea).load_text(text)
        self._status(
            f"{path} · credentials masked · ctrl+s save · F3 validate · F4 revert · F5 reload"
        )

    def unsaved(self) -> bool:
        """Whether the editor holds edits nothing has written: leaving the
        bot's screen would drop them, so it asks first."""
        return self._loaded_text is not None and self.query_one(TextArea).text != self._loaded_text

    def _parsed(self) -> dict[str, Any] | None:
        from cftui.gateway import config as gc

        try:
            edited = gc.parse_config(self.query_one(TextArea).text, "the edited config")
        except CftuiError as exc:
            self._status(str(exc), True)
            return None
        return unmask(edited, self._original or {}, gc.MASK)

    def action_validate(self) -> None:
        if self._parsed() is not None:
            self._status("valid JSON5 object: ctrl+s writes it")

    def action_save(self) -> None:
        data = self._parsed()
        if data is not None:
            self._write(data)

    @work(thread=True, exclusive=True, group="config", exit_on_error=False)
    def _write(self, data: dict[str, Any]) -> None:
        from cftui.gateway import config as gc

        try:
            gc.write_config(self.app.home, self.bot, data, reason="tui edit")
        except CftuiError as exc:
            self.app.call_from_thread(self._status, str(exc), True)
            return
        self.app.call_from_thread(self.notify, f"{self.bot}: config saved (restart to apply)")
        self._load()

    def action_revert(self) -> None:
        self._revert()

    @work(thread=True, exclusive=True, group="config", exit_on_error=False)
    def _revert(self) -> None:
        from cftui.gateway import config as gc

        try:
            gc.revert(self.app.home, self.bot)
        except CftuiError as exc:
            self.app.call_from_thread(self._status, str(exc), True)
            return
        self.app.call_from_thread(self.notify, f"{self.bot}: config reverted to known-good")
        self._load()
