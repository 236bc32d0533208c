"""A small Hugging Face Hub-compatible HTTP server for offline tests (stdlib only).

It implements the subset of the Hub API that `huggingface_hub` 2.4 (and `transformers` on top of it) uses to push
and pull model repos, as read from the installed client source:

- `GET /api/whoami-v2`, `POST /api/repos/create`, `DELETE /api/repos/delete`, `POST /api/validate-yaml`
- `GET /api/{type}s/{repo_id}[/revision/{rev}]` (repo info: `sha`, `siblings`, with sizes and LFS info if `?blobs=1`)
- `GET /api/{type}s/{repo_id}/tree/{rev}[/{path}]`, `POST .../paths-info/{rev}`, `GET .../refs`, `GET .../commits/{rev}`
- `POST .../preupload/{rev}` (regular vs LFS), `POST .../commit/{rev}` (NDJSON: header, file, lfsFile, deletedFile,
  deletedFolder; `?create_pr=1` opens `refs/pr/N`), `POST|DELETE .../branch/{name}`, `POST .../tag/{rev}`
- Git LFS: `POST /{repo_id}.git/info/lfs/objects/batch` (basic transfer), `.../verify`, `PUT|GET|HEAD /_lfs/{oid}`
- `GET|HEAD /[{type}s/]{repo_id}/resolve/{rev}/{path}` with `ETag`, `X-Repo-Commit`, `X-Linked-Etag`, `X-Linked-Size`,
  `Content-Length` and single byte-range requests.

Missing repos, revisions and files answer 404 with the Hub's `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`,
`EntryNotFound`) so the client raises its usual errors. Xet storage is not implemented: clients must run with
`HF_HUB_DISABLE_XET=1` (see `tests.hub_fixtures.hub_env`). Any valid token may write to any namespace; `.gitignore`
handling, gated repos, discussions and multipart LFS uploads are not implemented.

Content lives in a storage folder (content-addressed by sha256 under `objects/`), repo metadata in memory and in
`state.json` next to it, so a server restarted on the same folder sees the same repos.

Modules: `revisions` (commits, branches, tags, PR refs), `store` (objects on disk, commits applied, persistence),
`handler` (HTTP plumbing, auth, Hub-style errors), `api` (`/api/...` endpoints), `transfer` (LFS and `resolve`),
`server` (route table and `HubServer`).

Why a hand-written server and not a package (checked 2026-12 with huggingface_hub 2.4.0, transformers 5.24.0,
`HF_HUB_DISABLE_XET=1`; the package index's names and summaries were searched for a local, mock, mirror or
self-hosted Hugging Face Hub, and each candidate was run against the client calls these tests make: `whoami`,
`create_repo` (also private), `upload_folder` and `push_to_hub` with plain LFS, `model_info`, `hf_hub_download`,
`snapshot_download`, `list_repo_commits`, `from_pretrained` by id and by revision, and the errors for missing things):

- `hf-local-hub` 3.0.0 (MIT; releases 0.1.0, 0.2.0, 3.0.0; its project URL moved between owners from 0.2.0 to 3.0.0):
  no server at all. Wheel and sdist hold only a Typer CLI and a client wrapper (`hf_local/__init__.py`, `cli.py`,
  502 lines); the server is a Go binary that no release ships. `hf_local.serve_background()` and `hf-local serve`
  raise `FileNotFoundError: hf-local Go binary not found ... Build with 'make server' or add Go binary to PATH.`
  0.1.0 and 0.2.0 have the same two modules and binary lookup; the 0.2.0 README lists authenticated
  upload/delete/modify endpoints as "to be added".
- `olah` 0.5.4 (MIT, actively released): a read-only mirror/cache of huggingface.co. Run offline with
  `mirrors-path`: no write endpoints, so `push_to_hub` and `upload_folder` fail: `POST /api/repos/create` answers
  405 Method Not Allowed, `POST /api/models/{repo}/preupload/main` 404, and there is no `/commit/{rev}` nor
  `.git/info/lfs/objects/batch`. `GET /api/whoami-v2` is forwarded upstream (504 offline). From a git repo prepared
  by hand it serves `from_pretrained` by id and by commit and `snapshot_download`, but `GET /api/models/{repo}` answers
  401 (`model_info` raises RepositoryNotFoundError), a missing file or revision raises RepositoryNotFoundError
  instead of (Remote)EntryNotFoundError / RevisionNotFoundError, `list_repo_commits` fails with `KeyError: 'user'`,
  and there are no private repos or token checks.
- `giftless` 0.6.2: a Git LFS server only (`objects/batch`, verify, storage); none of the Hub API (repos, preupload,
  commit, tree, resolve).
- `hfmirror` 0.0.7: a sync client that uploads to huggingface.co, no server.
"""

from .handler import RequestRecord
from .revisions import DEFAULT_BRANCH, Commit, FileEntry, HubError, Repo, git_blob_id, lfs_pointer
from .server import DEFAULT_ORGS, DEFAULT_TOKENS, ROUTES, HubServer
from .store import LFS_THRESHOLD, HubStore

__all__ = [
    "DEFAULT_BRANCH",
    "DEFAULT_ORGS",
    "DEFAULT_TOKENS",
    "LFS_THRESHOLD",
    "ROUTES",
    "Commit",
    "FileEntry",
    "HubError",
    "HubServer",
    "HubStore",
    "Repo",
    "RequestRecord",
    "git_blob_id",
    "lfs_pointer",
]
