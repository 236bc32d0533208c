"""Resuming when the model lists its parameters in another order than the run that wrote the checkpoint.

A warm start that added the face-descriptor branch used to register it last; the resumed model built it in its place,
so `accelerator.load_state` put every Adam moment on the wrong tensor and the fused AdamW kernel crashed the process
(a segmentation fault on the real stage-4 run). These tests pin the fix: the optimizer state follows names.
"""

from __future__ import annotations

import json

import pytest
import torch

from ftv_model import FTVConfig, FTVModel
from ftv_train.training.optimizer_state import (
    OPTIMIZER_PARAMETERS_FILE,
    OptimizerStateMismatchError,
    align_optimizer_state,
    match_optimizer_state,
)
from tests.model_fixtures import TINY_OVERRIDES


class Net(torch.nn.Module):
    """Two layers whose registration order can be swapped, as a module added after construction would be."""

    def __init__(self, late_last: bool) -> None:
        super().__init__()
        if late_last:
            self.body = torch.nn.Linear(3, 5)
            self.face_descriptor_fusion = torch.nn.Linear(5, 2)
        else:
            self.face_descriptor_fusion = torch.nn.Linear(5, 2)
            self.body = torch.nn.Linear(3, 5)


def _trained_state(net: Net) -> tuple[dict, list[str]]:
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(net.parameters(), lr=0.1, fused=True)
    for _ in range(3):
        loss = sum((p * torch.randn_like(p)).sum() for p in net.parameters())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return optimizer.state_dict(), [n for n, _ in net.named_parameters()]


def _loaded(state: dict, net: Net) -> torch.optim.Optimizer:
    optimizer = torch.optim.AdamW(net.parameters(), lr=0.1, fused=True)
    optimizer.load_state_dict(state)  # by position, as accelerate does
    return optimizer


def _moments_by_name(optimizer: torch.optim.Optimizer, net: Net) -> dict[str, torch.Tensor]:
    return {n: optimizer.state[p]["exp_avg"] for n, p in net.named_parameters()}


def test_state_follows_names_when_the_checkpoint_lists_them() -> None:
    writer = Net(late_last=True)
    state, saved_names = _trained_state(writer)
    expected = {n: s["exp_avg"].clone() for n, s in zip(saved_names, state["state"].values())}
    reader = Net(late_last=False)
    reader.load_state_dict(writer.state_dict())
    optimizer = _loaded(state, reader)
    names = [n for n, _ in reader.named_parameters()]
    assert align_optimizer_state(optimizer, names, saved_names, "generator")
    for name, moment in _moments_by_name(optimizer, reader).items():
        torch.testing.assert_close(moment, expected[name], rtol=0, atol=0)
    loss = sum(p.sum() for p in reader.parameters())
    loss.backward()
    optimizer.step()  # the fused kernel now sees matching shapes


def test_older_checkpoints_with_the_added_branch_last_are_recognised(tmp_path) -> None:
    writer = Net(late_last=True)
    state, saved_names = _trained_state(writer)
    expected = {n: s["exp_avg"].clone() for n, s in zip(saved_names, state["state"].values())}
    reader = Net(late_last=False)
    optimizer = _loaded(state, reader)
    messages: list[str] = []
    names = {"generator": [n for n, _ in reader.named_parameters()]}
    match_optimizer_state(tmp_path, {"generator": optimizer}, names, messages.append)  # no names file: legacy
    assert messages and "by name" in messages[0]
    for name, moment in _moments_by_name(optimizer, reader).items():
        torch.testing.assert_close(moment, expected[name], rtol=0, atol=0)


def test_same_order_changes_nothing(tmp_path) -> None:
    net = Net(late_last=False)
    state, names = _trained_state(net)
    optimizer = _loaded(state, net)
    (tmp_path / OPTIMIZER_PARAMETERS_FILE).write_text(json.dumps({"generator": names}))
    messages: list[str] = []
    match_optimizer_state(tmp_path, {"generator": optimizer}, {"generator": names}, messages.append)
    assert messages == []


def test_a_state_that_fits_no_order_is_a_clear_error() -> None:
    writer = Net(late_last=True)
    state, _ = _trained_state(writer)

    class Other(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Linear(4, 5)
            self.b = torch.nn.Linear(5, 2)

    other = Other()
    optimizer = torch.optim.AdamW(other.parameters(), lr=0.1)
    optimizer.load_state_dict(state)
    with pytest.raises(OptimizerStateMismatchError, match="does not match"):
        align_optimizer_state(optimizer, [n for n, _ in other.named_parameters()], None, "generator")
    with pytest.raises(OptimizerStateMismatchError, match="other parameters"):
        align_optimizer_state(optimizer, [n for n, _ in other.named_parameters()], ["x", "y", "z", "w"], "generator")


def test_an_added_descriptor_branch_sits_where_a_built_one_does() -> None:
    added = FTVModel(FTVConfig(**TINY_OVERRIDES))
    added.add_face_descriptor_fusion()
    built = FTVModel(FTVConfig(**TINY_OVERRIDES, face_descriptor="dlib-resnet-v1"))
    assert [n for n, _ in added.named_parameters()] == [n for n, _ in built.named_parameters()]
