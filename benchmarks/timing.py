"""Per-module wall time for the benchmarks, through forward hooks (no changes to the model)."""

from __future__ import annotations

import time

import torch


class ModuleTimer:
    """Accumulates the wall time of each named module's forward calls in `totals` (seconds)."""

    def __init__(self, modules: dict[str, torch.nn.Module]) -> None:
        self.totals = dict.fromkeys(modules, 0.0)
        self._starts: dict[str, float] = {}
        for name, module in modules.items():
            module.register_forward_pre_hook(lambda *_, n=name: self._starts.__setitem__(n, time.perf_counter()))
            module.register_forward_hook(lambda *_, n=name: self._stop(n))

    def _stop(self, name: str) -> None:
        self.totals[name] += time.perf_counter() - self._starts[name]

    def reset(self) -> None:
        self.totals = dict.fromkeys(self.totals, 0.0)


def synthesis_parts(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The FTVModel modules a synthesis call runs, in order, for a per-part time breakdown."""
    return {
        "face encoder": model.face_encoder,
        "text encoder": model.text_encoder.encoder,
        "duration predictor": model.duration_predictor,
        "flow": model.flow,
        "decoder": model.decoder,
    }
