"""The numbers of a logging interval, kept on the device: every micro-batch's losses and every optimizer step's
gradient norms and skip decision are added there without a host sync, and read once per interval (one all-reduce
and one `.tolist()`). Non-finite values are left out of the means and counted instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from accelerate import Accelerator

from ftv_train.training.gan_step import NORM_VALUES, TRAIN_VALUES, GANStep


@dataclass
class IntervalReading:
    """One logging interval, reduced over processes."""

    means: dict[str, float]  # train/<name> -> mean over the interval's finite values
    steps: int  # optimizer steps in the interval (this process)
    seconds: float
    data_seconds: float  # time spent waiting for batches
    nonfinite: int  # skipped steps in the interval
    nonfinite_total: int  # skipped steps in the whole run
    consecutive: int  # skipped steps in a row, up to now


class StepMeters:
    """Device accumulators of the current interval, and the run's skipped-step counters."""

    def __init__(self, device: torch.device, nonfinite_total: int = 0) -> None:
        self.device = device
        self.nonfinite_total = torch.tensor(nonfinite_total, device=device, dtype=torch.long)
        self.consecutive = torch.zeros((), device=device, dtype=torch.long)
        self.reset()

    def reset(self) -> None:
        """Start a new interval."""
        device = self.device
        self.sums = torch.zeros(len(TRAIN_VALUES), device=device)
        self.counts = torch.zeros(len(TRAIN_VALUES), device=device)
        self.norm_sums = torch.zeros(len(NORM_VALUES), device=device)
        self.norm_counts = torch.zeros(len(NORM_VALUES), device=device)
        self.interval_nonfinite = torch.zeros((), device=device, dtype=torch.long)
        self.start = time.perf_counter()
        self.steps = 0
        self.data_seconds = 0.0

    def add_micro_batch(self, values: torch.Tensor) -> None:
        """A GANStep's per-step values (TRAIN_VALUES order)."""
        finite = torch.isfinite(values)
        self.sums += torch.where(finite, values, torch.zeros_like(values))
        self.counts += finite

    def add_optimizer_step(self, step_fn: GANStep) -> None:
        """The gradient norms and skip decision of the update `step_fn` just made."""
        self.steps += 1
        bad = ~(step_fn.finite_g & step_fn.finite_d)
        self.nonfinite_total += bad
        self.interval_nonfinite += bad
        self.consecutive = (self.consecutive + 1) * bad
        norms = torch.stack([step_fn.norm_g.float(), step_fn.norm_d.float()])
        finite = torch.isfinite(norms)
        self.norm_sums += torch.where(finite, norms, torch.zeros_like(norms))
        self.norm_counts += finite

    def read(self, accelerator: Accelerator) -> IntervalReading:
        """The interval's means and counters, summed over processes (the one host sync of an interval)."""
        # Skip decisions use all-reduced gradient norms, so the three step counters are equal on every process.
        counters = torch.stack([self.interval_nonfinite, self.nonfinite_total, self.consecutive]).float()
        packed = torch.cat([self.sums, self.counts, self.norm_sums, self.norm_counts, counters])
        packed = accelerator.reduce(packed, reduction="sum") if accelerator.num_processes > 1 else packed
        values = packed.tolist()
        n, m = len(TRAIN_VALUES), len(NORM_VALUES)
        sums, counts = values[:n], values[n : 2 * n]
        norm_sums, norm_counts = values[2 * n : 2 * n + m], values[2 * n + m : 2 * n + 2 * m]
        interval_nonfinite, nonfinite_total, consecutive = (
            int(round(v / accelerator.num_processes)) for v in values[-3:]
        )
        means: dict[str, float] = {}
        for name, total, count in zip(TRAIN_VALUES, sums, counts):
            if count:
                means[f"train/{name}"] = total / count
        for name, total, count in zip(NORM_VALUES, norm_sums, norm_counts):
            if count:
                means[f"train/{name}"] = total / count
        return IntervalReading(
            means=means,
            steps=self.steps,
            seconds=time.perf_counter() - self.start,
            data_seconds=self.data_seconds,
            nonfinite=interval_nonfinite,
            nonfinite_total=nonfinite_total,
            consecutive=consecutive,
        )
