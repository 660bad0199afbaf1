"""A directory that behaves like a Kubernetes ConfigMap volume, for tests and drills.

The kubelet writes each version of the data into a new timestamped directory, then atomically
renames the ``..data`` symlink to point at it; each key is a symlink through ``..data``. A
reader that opens the key's path fresh sees the new value at the instant of the rename.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


class ConfigMapDir:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._generation = 0

    def path(self, key: str) -> Path:
        return self.root / key

    def publish(self, **data: str) -> float:
        """Writes a new version and swaps it in; returns the time.time() of the swap."""
        self._generation += 1
        version = self.root / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{self._generation:04d}"
        version.mkdir()
        for key, value in data.items():
            (version / key).write_text(value)
        staging = self.root / "..data_tmp"
        staging.symlink_to(version.name)
        os.replace(staging, self.root / "..data")  # the atomic step
        swapped_at = time.time()
        for key in data:
            link = self.root / key
            if not link.is_symlink():
                link.symlink_to(f"..data/{key}")
        return swapped_at
