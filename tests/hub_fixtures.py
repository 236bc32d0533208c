"""Pytest fixture `hub_server` (a local Hub, `tests/hub_server/`) and `run_with_hub` to run client code against it.

Why a subprocess: `huggingface_hub` reads `HF_ENDPOINT`, `HF_HUB_OFFLINE`, `HF_HUB_DISABLE_XET`, the cache paths, ...
into module constants at import time, and several values are copied further at import (the default `HfApi()`
instance's endpoint behind `huggingface_hub.create_repo` & co, the trusted-hosts sets used for redirects and auth,
`transformers`' cached `HfApi`, the shared HTTP client). Patching them all in the test process is fragile and would
leak into other tests (`tests/conftest.py` sets `HF_HUB_OFFLINE=1` for the whole session). `run_with_hub` instead runs
the client code in a fresh interpreter whose environment points at the local server: online, no Xet, a private
`HF_HOME` (token, cache), no proxies.

Usage (once `"tests.hub_fixtures"` is in the `pytest_plugins` of `tests/conftest.py` or the test module)::

    def test_push_and_pull(hub_server, hub_run):
        hub_run("from ftv_model import FTVModel; ...; model.push_to_hub('org/ftv', token='hf_test')", check=True)
        assert "model.safetensors" in hub_server.files("org/ftv")
        hub_run("...; FTVModel.from_pretrained('org/ftv')", hf_home=..., check=True)  # fresh cache if wanted

`hub_run(code, **kwargs)` is `run_with_hub(code, hub_server.endpoint, tmp_path, **kwargs)`.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.hub_server import HubServer

REPO_ROOT = Path(__file__).resolve().parents[1]
HUB_TOKEN = "hf_test"
"""A token the test server accepts (user `test-user`, member of org `org`)."""

_CLEARED_ENV = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_TOKEN_PATH",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_ASSETS_CACHE",
    "HF_XET_CACHE",
    "TRANSFORMERS_CACHE",
    "HF_DATASETS_CACHE",
    "TRANSFORMERS_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "HUGGINGFACE_CO_STAGING",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN",
    "HF_HUB_ETAG_TIMEOUT",
    "HF_HUB_DOWNLOAD_TIMEOUT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


def hub_env(endpoint: str, hf_home: str | os.PathLike[str], token: str | None = HUB_TOKEN) -> dict[str, str]:
    """Environment (based on `os.environ`) for a client process that talks to the test hub at `endpoint`.

    Sets `HF_ENDPOINT`, `HF_HUB_OFFLINE=0`, `HF_HUB_DISABLE_XET=1` (the server speaks plain LFS), `HF_HOME` (cache and
    token live there), `HF_TOKEN` (unless `token` is None), and clears proxies and other cache/offline variables.
    """
    env = {key: value for key, value in os.environ.items() if key not in _CLEARED_ENV}
    hf_home = Path(hf_home)
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HUB_OFFLINE="0",
        HF_HUB_DISABLE_XET="1",
        HF_HOME=str(hf_home),
        HF_HUB_CACHE=str(hf_home / "hub"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_UPDATE_CHECK="1",
        HF_HUB_DISABLE_SYMLINKS_WARNING="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p),
        PYTHONUNBUFFERED="1",
    )
    if token is not None:
        env["HF_TOKEN"] = token
    return env


def run_with_hub(
    code: str,
    endpoint: str,
    cwd: str | os.PathLike[str],
    *,
    hf_home: str | os.PathLike[str] | None = None,
    token: str | None = HUB_TOKEN,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run Python `code` in a fresh interpreter that talks to the test hub at `endpoint`.

    The code is dedented, written to a file in `cwd` (so tracebacks show source lines) and run there with
    `hub_env(endpoint, hf_home or cwd / "hf_home", token)` plus `env`. The repo root is on `PYTHONPATH`. Returns the
    completed process (text stdout/stderr); with `check=True`, fails the test with both streams if it exits non-zero.
    """
    cwd = Path(cwd)
    cwd.mkdir(parents=True, exist_ok=True)
    script = cwd / f"hub_client_{uuid.uuid4().hex[:8]}.py"
    script.write_text(textwrap.dedent(code))
    full_env = hub_env(endpoint, hf_home if hf_home is not None else cwd / "hf_home", token)
    full_env.update(env or {})
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"hub client script exited with {result.returncode}\n--- stdout ---\n{result.stdout}"
            f"\n--- stderr ---\n{result.stderr}",
            pytrace=False,
        )
    return result


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """A Hub-compatible server on 127.0.0.1 for the whole session; stopped at teardown.

    Repos persist across tests of the session: use distinct repo names per test. `hub_server.endpoint` is its URL,
    `hub_server.files(repo_id)` / `read_file` / `revision_sha` / `requests` let tests look at what was stored.
    """
    server = HubServer(tmp_path_factory.mktemp("hub_storage"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def hub_run(hub_server: HubServer, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`run_with_hub` bound to the session's hub and this test's `tmp_path`: `hub_run(code, check=True, ...)`."""
    return functools.partial(run_with_hub, endpoint=hub_server.endpoint, cwd=tmp_path)
