"""Test-wide settings: offline hub, no telemetry, few threads, and paths to shared real data."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED_DATA = Path(os.environ.get("FTV_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip: it holds real data that may not be copied into the repo."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"needs ../shared/data, the project's real faces, talking-face video and speech, whose licences keep them "
            f"out of this repository (looked for at {SHARED_DATA}; set FTV_SHARED_DATA to its path); always present "
            "in CI"
        )
    return SHARED_DATA


pytest_plugins = ["tests.model_fixtures", "tests.hub_fixtures"]
