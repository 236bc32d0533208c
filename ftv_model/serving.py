"""Process settings for a long-running synthesis server (the demo): its memory must stay flat over many requests.

oneDNN's kernel-cache cap belongs here too, but it is read when torch starts, so `app.py` sets it before importing
anything (see there); what can wait for torch is below.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys


def release_freed_memory() -> None:
    """glibc keeps freed heap memory for reuse, and the synthesis buffers (tens of MB, a new size each request) grow
    it request after request: serve big blocks by mmap (returned on free) and trim the heap above 64 MiB free.
    Without this and the oneDNN cache cap (app.py), the app grew 1.7 -> 2.4 GB over 200 requests."""
    name = ctypes.util.find_library("c")
    if not sys.platform.startswith("linux") or not name:
        return
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8  # malloc.h
        libc.mallopt(m_mmap_threshold, 4 * 1024 * 1024)
        libc.mallopt(m_trim_threshold, 64 * 1024 * 1024)
        libc.mallopt(m_arena_max, 2)
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return
