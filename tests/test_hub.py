"""push_to_hub + from_pretrained of FTVModel and FTVProcessor through a Hub-compatible server on 127.0.0.1."""

from __future__ import annotations

import json

import torch

from ftv_model import FTVModel

from .conftest import FIXTURES

PUSH = """
import torch
from ftv_model import FTVModel, FTVProcessor
from tests.model_fixtures import tiny_config
torch.manual_seed(0)
model = FTVModel(tiny_config())
model.push_to_hub("org/ftv", token="hf_test")
FTVProcessor().push_to_hub("org/ftv", token="hf_test")
"""

PULL = """
import json, torch
from transformers import AutoModel, AutoProcessor
import ftv_model  # registers the ftv model type
model = AutoModel.from_pretrained("org/ftv").eval()
processor = AutoProcessor.from_pretrained("org/ftv")
inputs = processor(text="Hello there.", images="{face}")
with torch.inference_mode():
    out = model(**inputs, seed=5)
torch.save(out.waveform, "{out}")
print(json.dumps({{"model": type(model).__name__, "processor": type(processor).__name__}}))
"""


def test_push_to_hub_then_from_pretrained(hub_server, hub_run, tmp_path):
    hub_run(PUSH, check=True)
    files = hub_server.files("org/ftv")
    assert files["model.safetensors"].lfs, "weights must go through LFS"
    assert {"config.json", "processor_config.json", "vocab.json", "tokenizer_config.json"} <= set(files)
    assert not [name for name in files if name.endswith((".bin", ".pt", ".pth"))]
    assert json.loads(hub_server.read_file("org/ftv", "config.json"))["model_type"] == "ftv"

    face = FIXTURES / "faces" / "london_005.jpg"
    waveform_path = tmp_path / "hub.pt"
    result = hub_run(PULL.format(face=face, out=waveform_path), hf_home=tmp_path / "fresh-cache", check=True)
    names = json.loads(result.stdout.strip().splitlines()[-1])
    assert names == {"model": "FTVModel", "processor": "FTVProcessor"}

    # The same weights give the same audio locally.
    from ftv_model import FTVProcessor

    from .model_fixtures import tiny_config

    torch.manual_seed(0)
    local = FTVModel(tiny_config()).eval()
    with torch.inference_mode():
        expected = local(**FTVProcessor()(text="Hello there.", images=face), seed=5).waveform
    assert torch.equal(torch.load(waveform_path), expected)
