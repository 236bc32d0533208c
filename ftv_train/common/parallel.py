"""Run a function over items on CPU worker processes with a progress bar: the pool that data preparation and the
offline corpus share.

A fork server, not fork: forking a process that holds torch/OpenMP threads can deadlock the children. The fork
server imports the caller's module once (`preload`) and forks clean workers from it; spawn where there is none
(Windows). One worker runs in-process, after `local_setup`, so small jobs pay no start-up. Worker initialisers
call `use_one_thread`.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from typing import Any


def use_one_thread(opencv: bool = True) -> None:
    """Give this process one compute thread: N workers each running torch's (and OpenCV's) default thread pool
    would oversubscribe the cores and run slower than one thread each."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    if opencv:
        try:
            import cv2

            cv2.setNumThreads(1)
        except ImportError:
            pass


def map_with_workers(
    function: Callable[[Any], Any],
    items: Sequence[Any],
    workers: int,
    initializer: Callable[..., None],
    initargs: tuple,
    preload: str,
    progress: Any,
    local_setup: Callable[[], None] | None = None,
) -> list[Any]:
    """`function(item)` for every item, results in completion order; `progress.update()` after each.

    Workers run `initializer(*initargs)` once; with one worker, `local_setup()` (default: the initializer) runs
    in this process instead.
    """
    results: list[Any] = []
    if workers == 1 or len(items) <= 1:
        (local_setup or (lambda: initializer(*initargs)))()
        for item in items:
            results.append(function(item))
            progress.update()
        return results
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([preload])
    else:
        context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=initializer, initargs=initargs) as pool:
        for result in pool.imap_unordered(function, items, chunksize=1):
            results.append(result)
            progress.update()
    return results
