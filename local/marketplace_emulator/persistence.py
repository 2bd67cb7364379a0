"""The emulator's state in a file, so that local mode's AWS Marketplace keeps its buyers across restarts.

What is kept is what `Marketplace` holds: every attribute its `reset()` sets, taken whole (products,
licenses, billed records, delivered events, the clock offset, and whatever a later version adds), except
`SKIPPED`. A new attribute is kept without a change here if it is made of plain values (numbers, text,
lists, dicts, sets, tuples, Decimal, datetime) and of the emulator's own classes; one that holds anything
else (a lock, a function) or a secret must be named in `SKIPPED`. A field added to one of the emulator's
dataclasses gets its default when an older file is read; so does a new `Marketplace` attribute.

The file is written after every change an API or admin call made, before that call is answered (a caller
that got an answer, e.g. the metering job told its usage was billed, finds it billed after any restart),
and by a timer for the changes the emulator makes on its own (a deferred event). Each write goes to a
temporary file renamed over the old one, so a reader (or a restart after SIGKILL) sees the old state or the
new one, never half of one.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import tempfile
import threading
from pathlib import Path
from typing import Any

from local.marketplace_emulator.state import Marketplace

# Not kept: the lock and the clock; registration tokens (secrets, and an hour's life: a buyer who has not
# registered yet is sent to the fulfillment URL again with a new one); a key that signs the emulator's page
# tokens (a secret too: each start makes its own); the fault knobs tests set.
SKIPPED = frozenset({"_lock", "_base_clock", "tokens", "page_token_key", "faults", "calls"})
FORMAT = 1
_SAFE_MODULES = ("local.marketplace_emulator.",)
_SAFE_GLOBALS = {
    ("decimal", "Decimal"),
    ("datetime", "datetime"),
    ("datetime", "timezone"),
    ("datetime", "timedelta"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
}


class StateFile:
    """Reads and writes one emulator's state at `path`."""

    def __init__(self, marketplace: Marketplace, path: Path) -> None:
        self.marketplace = marketplace
        self.path = path
        self._write_lock = threading.Lock()
        self._last: bytes | None = None

    def load(self) -> bool:
        """Puts the file's state into the marketplace; False when there is no file."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return False
        saved = _SafeUnpickler(io.BytesIO(data)).load()
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            raise ValueError(f"{self.path}: not an emulator state file of this version")
        with self.marketplace._lock:  # the state's own lock, held while the state is replaced
            self.marketplace.reset()
            for name, value in saved["state"].items():
                if name not in SKIPPED:
                    setattr(self.marketplace, name, _with_defaults(value))
        self._last = data
        return True

    def save(self) -> None:
        """Writes the state now (nothing is written when it has not changed since the last write)."""
        with self.marketplace._lock:  # one consistent picture of the state
            state = {name: value for name, value in vars(self.marketplace).items() if name not in SKIPPED}
            data = pickle.dumps({"format": FORMAT, "state": state}, protocol=pickle.HIGHEST_PROTOCOL)
        with self._write_lock:
            if data == self._last:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
            try:
                with os.fdopen(handle, "wb") as file:
                    file.write(data)
                Path(temporary).replace(self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            self._last = data

    def save_every(self, seconds: float, stop: threading.Event) -> threading.Thread:
        """Saves in the background every `seconds` until `stop` is set (for changes no call made)."""

        def run() -> None:
            while not stop.wait(seconds):
                self.save()

        thread = threading.Thread(target=run, name="emulator-state", daemon=True)
        thread.start()
        return thread


class _SafeUnpickler(pickle.Unpickler):
    """Only the emulator's classes and plain values: a state file never runs other code."""

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith(_SAFE_MODULES) or (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of the emulator's state")


def _with_defaults(value: Any, seen: set[int] | None = None) -> Any:
    """`value` with every dataclass instance in it given the fields it lacks (added since it was saved)."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return value
    seen.add(id(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            if item.name not in vars(value):
                if item.default is not dataclasses.MISSING:
                    object.__setattr__(value, item.name, item.default)
                elif item.default_factory is not dataclasses.MISSING:
                    object.__setattr__(value, item.name, item.default_factory())
            if item.name in vars(value):
                _with_defaults(getattr(value, item.name), seen)
    elif isinstance(value, dict):
        for key, item in value.items():
            _with_defaults(key, seen)
            _with_defaults(item, seen)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _with_defaults(item, seen)
    return value
