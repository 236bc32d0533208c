"""Optimizer state that follows parameters by name across a resume.

torch optimizers save their state by position in the parameter list, and `accelerator.load_state` puts it back by
position. When a resumed model lists its parameters in another order than the run that wrote the checkpoint, every
Adam moment lands on the wrong tensor: the for-each kernel raises a shape error and the fused kernel reads past the
end of its buffers (a segmentation fault). That happened to warm starts that added the face-descriptor branch:
`add_face_descriptor_fusion` registered it after every other module, a resumed model builds it in its place.

So each checkpoint also stores the names in optimizer order (`optimizer_parameters.json`), and a resume moves each
state onto the parameter of the same name. Checkpoints written before that file existed are checked by shape, and the
one known older order (the added branch last) is recognised; anything else is a clear error, never a crash.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

OPTIMIZER_PARAMETERS_FILE = "optimizer_parameters.json"
# Modules a warm start could add after construction; checkpoints written before OPTIMIZER_PARAMETERS_FILE listed
# their parameters last.
LATE_ADDED_MODULES = ("face_descriptor_fusion.",)


class OptimizerStateMismatchError(RuntimeError):
    """The checkpoint's optimizer state does not fit this run's trainable parameters; the message says why."""


def trainable_names(module: torch.nn.Module) -> list[str]:
    """Names of the trainable parameters, in the order the optimizer receives them."""
    return [name for name, parameter in module.named_parameters() if parameter.requires_grad]


def write_parameter_names(directory: Path, names: dict[str, list[str]]) -> None:
    """Store, per optimizer, the parameter names in optimizer order beside the checkpoint's optimizer files."""
    (directory / OPTIMIZER_PARAMETERS_FILE).write_text(json.dumps(names, indent=1), encoding="utf-8")


def read_parameter_names(directory: Path) -> dict[str, list[str]] | None:
    path = directory / OPTIMIZER_PARAMETERS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _legacy_orders(names: list[str]) -> list[list[str]]:
    """Orders an older checkpoint may have used for these names: as they are, and late-added modules last."""
    late = [n for n in names if n.startswith(LATE_ADDED_MODULES)]
    orders = [names]
    if late:
        orders.append([n for n in names if n not in late] + late)
    return orders


def _fits(saved_order: Sequence[str], states: list[dict], shapes: dict[str, torch.Size]) -> bool:
    """Whether state i (saved for saved_order[i]) has the shape of that parameter, for every i with a state."""
    for name, state in zip(saved_order, states):
        moment = state.get("exp_avg")
        if moment is not None and moment.shape != shapes[name]:
            return False
    return True


def align_optimizer_state(
    optimizer: torch.optim.Optimizer,
    names: list[str],
    saved_names: list[str] | None,
    label: str,
) -> bool:
    """Move the loaded state onto the parameters it was saved for. `names`: this run's parameter names in optimizer
    order; `saved_names`: the checkpoint's, when it stored them. Returns whether anything moved."""
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    if len(parameters) != len(names):
        raise ValueError(f"{label}: {len(names)} names for {len(parameters)} optimizer parameters")
    states = [optimizer.state.get(p, {}) for p in parameters]
    shapes = {name: p.shape for name, p in zip(names, parameters)}
    if saved_names is not None:
        if sorted(saved_names) != sorted(names):
            only_saved = sorted(set(saved_names) - set(names))[:5]
            only_now = sorted(set(names) - set(saved_names))[:5]
            raise OptimizerStateMismatchError(
                f"The checkpoint's {label} optimizer trained other parameters than this run does (only in the "
                f"checkpoint: {only_saved}; only now: {only_now}). Resume with the same --freeze/--keep_trainable "
                "settings as the run that wrote it, or start a new run with --init from its export."
            )
        candidates = [saved_names]
    else:
        candidates = _legacy_orders(names)
    saved_order = next((order for order in candidates if _fits(order, states, shapes)), None)
    if saved_order is None:
        raise OptimizerStateMismatchError(
            f"The checkpoint's {label} optimizer state does not match this run's parameters (shapes differ and the "
            f"checkpoint has no {OPTIMIZER_PARAMETERS_FILE} to match them by name). Resume with the code and "
            "settings that wrote it, or start a new run with --init from its export."
        )
    if list(saved_order) == list(names):
        return False
    by_name = dict(zip(saved_order, states))
    optimizer.state.clear()
    for name, parameter in zip(names, parameters):
        if by_name[name]:
            optimizer.state[parameter] = by_name[name]
    return True


def match_optimizer_state(
    directory: Path,
    optimizers: dict[str, torch.optim.Optimizer],
    names: dict[str, list[str]],
    info: Callable[[str], None],
) -> None:
    """After `accelerator.load_state(directory)`: each optimizer's state on the parameters it was saved for."""
    saved = read_parameter_names(directory) or {}
    for label, optimizer in optimizers.items():
        if align_optimizer_state(optimizer, names[label], saved.get(label), label):
            info(
                f"Matched the {label}'s optimizer state to its parameters by name (the checkpoint lists them in "
                "another order)"
            )
