"""The installed package: console commands and the README's Python snippet work from a folder outside the repository.

scripts/setup.sh installs the checkout in editable mode (README's set-up commands run it), so `import ftv_model`,
the `ftv-*` commands and the bundled checkpoint are found from any folder.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile

from tests.test_app import app_env

REPO_ROOT = Path(__file__).resolve().parents[1]
PHOTO = REPO_ROOT / "tests" / "fixtures" / "faces" / "london_025.jpg"  # a whole 384 x 384 photo, not a crop
TEXT = "The birch canoe slid on the smooth planks."


def _outside(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    assert REPO_ROOT not in folder.resolve().parents
    return folder


def test_console_command_synthesizes_from_outside_the_repository(tmp_path: Path) -> None:
    # next to this interpreter (.venv/bin, without activating it), else on PATH
    beside = Path(sys.executable).parent / "ftv-synthesize"
    command = str(beside) if beside.is_file() else shutil.which("ftv-synthesize")
    assert command, "ftv-synthesize is not installed: run `bash scripts/setup.sh` (it installs the checkout)"
    folder = _outside(tmp_path)
    done = subprocess.run(
        [command, "--image", str(PHOTO), "--text", TEXT, "--out", "hello.wav"],
        cwd=folder, env=app_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    audio, rate = soundfile.read(folder / "hello.wav")
    assert rate == 22050 and len(audio) > rate  # the bundled checkpoint (joe's rate), found from here


def test_readme_snippet_on_a_whole_photo_outside_the_repository_gives_the_apps_voice(tmp_path: Path) -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    snippet = re.search(r"## Use it from Python\n\n```python\n(.*?)```", readme, re.DOTALL).group(1)
    snippet = snippet.replace('"face.jpg"', repr(str(PHOTO))).replace(
        "The birch canoe slid on the smooth planks.", TEXT
    )
    snippet += "\nimport numpy\nnumpy.save('snippet.npy', audio.numpy())\n"
    folder = _outside(tmp_path)
    (folder / "snippet.py").write_text(snippet)
    done = subprocess.run(
        [sys.executable, "snippet.py"], cwd=folder, env=app_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    from PIL import Image

    from ftv_model.synthesis import Synthesizer

    app = Synthesizer().synthesize(Image.open(PHOTO), TEXT, seed=0)  # the demo's path: its detector, its crop
    api = np.load(folder / "snippet.npy")
    assert api.shape == app.waveform.shape
    np.testing.assert_allclose(api, app.waveform, atol=2e-3)  # same voice; weight norm folded in the app only


def _run_python(code: str, cwd: Path) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_help_of_every_console_command_answers_without_loading_torch(tmp_path: Path) -> None:
    """`--help` is instant: the package loads lazily, and the CLI's parser needs neither torch nor transformers."""
    code = (
        "import sys, contextlib, io\n"
        "from ftv_model.synthesize import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "assert '--image' in out.getvalue(), out.getvalue()\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    assert _run_python(code, _outside(tmp_path)).strip() == "[]"


def test_auto_classes_know_ftv_after_import_in_the_usual_order(tmp_path: Path) -> None:
    """transformers imported first (third-party before first-party), then `import ftv_model`: the Auto classes
    resolve the `ftv` type without touching any ftv_model name; and using a name registers them too."""
    usual = "from transformers import AutoConfig\nimport ftv_model\nprint(type(AutoConfig.for_model('ftv')).__name__)"
    assert _run_python(usual, _outside(tmp_path)).strip() == "FTVConfig"
    by_name = (
        "import ftv_model\nfrom ftv_model import FTVModel\nfrom transformers import AutoModel\n"
        "print(AutoModel._model_mapping[ftv_model.FTVConfig].__name__)"
    )
    assert _run_python(by_name, tmp_path).strip() == "FTVModel"
