"""`HubServer`: the route table, the request handler made of all endpoint groups, and the server thread."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from .api import RepoApiHandler
from .handler import HubHTTPServer, RequestRecord, Route
from .revisions import DEFAULT_BRANCH, Commit, FileEntry
from .store import LFS_THRESHOLD, HubStore
from .transfer import TransferHandler

DEFAULT_TOKENS: dict[str, str] = {"hf_test": "test-user"}
"""Accepted bearer tokens and the user each one authenticates."""
DEFAULT_ORGS: tuple[str, ...] = ("org",)

_REPO = r"(?P<repo>[^/]+/[^/]+)"
_API = r"/api/(?P<plural>models|datasets|spaces)/" + _REPO
_PREFIX = r"/(?:(?P<prefix>datasets|spaces)/)?"
_LFS = _PREFIX + _REPO + r"\.git/info/lfs/objects"


def _route(methods: str, pattern: str, func: Callable[..., None]) -> Route:
    return frozenset(methods.split()), re.compile(pattern), func


ROUTES: list[Route] = [
    _route("GET", r"/api/whoami-v2", RepoApiHandler.whoami),
    _route("POST", r"/api/repos/create", RepoApiHandler.create_repo),
    _route("DELETE", r"/api/repos/delete", RepoApiHandler.delete_repo),
    _route("POST", r"/api/validate-yaml", RepoApiHandler.validate_yaml),
    _route("GET", _API, RepoApiHandler.info),
    _route("GET", _API + r"/revision/(?P<rev>[^/]+)", RepoApiHandler.info),
    _route("GET", _API + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", RepoApiHandler.tree),
    _route("POST", _API + r"/paths-info/(?P<rev>[^/]+)", RepoApiHandler.paths_info),
    _route("GET", _API + r"/refs", RepoApiHandler.refs),
    _route("GET", _API + r"/commits/(?P<rev>[^/]+)", RepoApiHandler.commits),
    _route("POST", _API + r"/preupload/(?P<rev>[^/]+)", RepoApiHandler.preupload),
    _route("POST", _API + r"/commit/(?P<rev>[^/]+)", RepoApiHandler.commit),
    _route("POST DELETE", _API + r"/branch/(?P<name>[^/]+)", RepoApiHandler.branch),
    _route("POST DELETE", _API + r"/tag/(?P<rev>[^/]+)", RepoApiHandler.tag),
    _route("POST", _LFS + r"/batch", TransferHandler.lfs_batch),
    _route("POST", _LFS + r"/verify", TransferHandler.lfs_verify),
    _route("GET HEAD PUT", r"/_lfs/(?P<oid>[0-9a-f]{64})", TransferHandler.lfs_object),
    _route(
        "GET HEAD",
        _PREFIX + _REPO + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)",
        TransferHandler.resolve,
    ),
]


class HubRequestHandler(RepoApiHandler, TransferHandler):
    """The server's request handler: every endpoint group, dispatched through `ROUTES`."""

    routes = ROUTES


class HubServer:
    """A Hub-compatible server on 127.0.0.1, serving from a storage folder, in a background thread.

    Example:
        ```py
        with HubServer(tmp_path) as hub:
            subprocess.run([sys.executable, "push.py"], env=hub_env(hub.endpoint, tmp_path / "hf_home"), check=True)
            assert "model.safetensors" in hub.files("org/ftv")
        ```
    """

    def __init__(
        self,
        storage_dir: str | os.PathLike[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: Mapping[str, str] | None = None,
        orgs: Iterable[str] = DEFAULT_ORGS,
        lfs_threshold: int = LFS_THRESHOLD,
    ):
        self._owns_storage = storage_dir is None
        self.storage_dir = Path(storage_dir) if storage_dir is not None else Path(tempfile.mkdtemp(prefix="hub-"))
        self.store = HubStore(self.storage_dir, lfs_threshold)
        self.host, self.port = host, port
        self.tokens = dict(DEFAULT_TOKENS if tokens is None else tokens)
        self.orgs = tuple(orgs)
        self.lock = threading.Lock()
        self.requests: list[RequestRecord] = []
        self.unhandled: list[str] = []
        self._httpd: HubHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """Base URL, e.g. `http://127.0.0.1:54321` (the port is known once started)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> HubServer:
        """Bind (port 0 picks a free port) and serve in a daemon thread."""
        if self._httpd is not None:
            return self
        httpd = HubHTTPServer((self.host, self.port), HubRequestHandler)
        httpd.hub = self
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name=f"test-hub-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket, and delete the storage folder if it was a temporary one."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join(timeout=10)
            self._httpd = self._thread = None
        if self._owns_storage:
            shutil.rmtree(self.storage_dir, ignore_errors=True)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- inspection helpers for tests ------------------------------------------------------------------------------

    def _commit(self, repo_id: str, revision: str, repo_type: str) -> Commit:
        """Commit of a repo at a revision, KeyError if missing."""
        repo = self.store.get(repo_type, repo_id)
        commit = repo.resolve(revision) if repo is not None else None
        if commit is None:
            raise KeyError(f"{repo_type} {repo_id}@{revision} not found")
        return commit

    def files(self, repo_id: str, revision: str = DEFAULT_BRANCH, repo_type: str = "model") -> dict[str, FileEntry]:
        """Files of a repo at a revision (KeyError if repo or revision is missing)."""
        return dict(self._commit(repo_id, revision, repo_type).files)

    def read_file(self, repo_id: str, path: str, revision: str = DEFAULT_BRANCH, repo_type: str = "model") -> bytes:
        """Content of a file of a repo at a revision."""
        return self.store.read_object(self._commit(repo_id, revision, repo_type).files[path].sha256)

    def revision_sha(self, repo_id: str, revision: str = DEFAULT_BRANCH, repo_type: str = "model") -> str:
        """Commit id a revision points to."""
        return self._commit(repo_id, revision, repo_type).id
