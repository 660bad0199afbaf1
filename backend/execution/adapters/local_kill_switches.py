"""Kill-switch sources that need no network: an environment variable and a mounted file."""

from __future__ import annotations

from pathlib import Path

from backend.execution.kill_switch import KillSwitchReading, parse_switch_value, unreadable


class EnvKillSwitch:
    """Read once at start-up: a ConfigMap consumed as env only changes on pod restart."""

    def __init__(self, name: str, raw: str) -> None:
        self._reading = parse_switch_value(f"env:{name}", raw)

    def read(self) -> KillSwitchReading:
        return self._reading


class FileKillSwitch:
    """The first line of a file, read fresh on every call.

    A ConfigMap volume updates by swapping the ``..data`` symlink; opening the path each time
    follows the new target, whereas a cached handle or inode would keep the old value forever.
    """

    def __init__(self, path: str) -> None:
        self._path = Path(path)
        self.source = f"file:{path}"

    def read(self) -> KillSwitchReading:
        try:
            with self._path.open("r", encoding="utf-8") as handle:
                first_line = handle.readline(256)
        except FileNotFoundError:
            return unreadable(self.source, "file does not exist")
        except (OSError, UnicodeDecodeError) as exc:
            return unreadable(self.source, f"cannot read: {type(exc).__name__}")
        return parse_switch_value(self.source, first_line)
