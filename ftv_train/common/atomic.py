"""Atomic folder writes for the resumable per-item caches of data preparation and the offline corpus.

An item's files are written into a temporary sibling folder that is renamed into place only when complete, so a
crash or a kill never leaves half an item that a rerun would take for finished.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_directory(folder: Path) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces `folder`, on error it is removed."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    try:
        yield temp
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(temp, folder)
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
