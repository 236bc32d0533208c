"""The Hub's JSON API for repos: whoami, create/delete, info, tree, paths-info, refs, commits, preupload, commit."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from .handler import BaseHubHandler
from .revisions import DEFAULT_BRANCH, TYPE_FROM_PLURAL, URL_PREFIX, Commit, FileEntry, HubError
from .store import check_path

_REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _tree_entries(commit: Commit, base: str, recursive: bool, expand: bool) -> list[dict[str, Any]]:
    """`tree` listing of `base` ("" for the root): files and folders, like the Hub's JSON."""
    prefix = f"{base}/" if base else ""
    folders: dict[str, list[str]] = {}
    entries: list[dict[str, Any]] = []
    for path, entry in sorted(commit.files.items()):
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix) :].split("/")
        for depth in range(1, len(rest)):
            folders.setdefault(prefix + "/".join(rest[:depth]), []).append(entry.blob_id)
        if recursive or len(rest) == 1:
            entries.append(_file_json(path, entry, commit if expand else None))
    for folder, blob_ids in folders.items():
        if recursive or "/" not in folder[len(prefix) :]:
            oid = hashlib.sha1("".join(sorted(blob_ids)).encode()).hexdigest()
            item: dict[str, Any] = {"type": "directory", "oid": oid, "size": 0, "path": folder}
            if expand:
                item["lastCommit"] = {"id": commit.id, "title": commit.title, "date": commit.date}
            entries.append(item)
    entries.sort(key=lambda item: item["path"])
    return entries


def _file_json(path: str, entry: FileEntry, commit: Commit | None) -> dict[str, Any]:
    """One file of a `tree` or `paths-info` answer."""
    item: dict[str, Any] = {"type": "file", "oid": entry.blob_id, "size": entry.size, "path": path}
    if entry.lfs:
        item["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
    if commit is not None:
        item["lastCommit"] = {"id": commit.id, "title": commit.title, "date": commit.date}
    return item


class RepoApiHandler(BaseHubHandler):
    """Endpoints under `/api/`: repo management, listings and commits."""

    def whoami(self) -> None:
        """`GET /api/whoami-v2`."""
        user = self._require_user()
        orgs = [{"type": "org", "name": org, "fullname": org, "roleInOrg": "admin"} for org in self.server.hub.orgs]
        self._send_json(
            {
                "type": "user",
                "id": hashlib.sha1(user.encode()).hexdigest()[:24],
                "name": user,
                "fullname": user,
                "email": f"{user}@example.invalid",
                "emailVerified": True,
                "isPro": False,
                "orgs": orgs,
                "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
            }
        )

    def create_repo(self) -> None:
        """`POST /api/repos/create`: 409 with the repo `url` if it exists (that is what `exist_ok` relies on)."""
        user = self._require_user()
        payload = self._json() or {}
        name, namespace = payload.get("name"), payload.get("organization") or user
        repo_type = payload.get("type") or "model"
        if repo_type not in URL_PREFIX:
            raise HubError(400, f"Unsupported repo type: {repo_type!r}")
        if not isinstance(name, str) or not _REPO_NAME.fullmatch(name) or "--" in name or ".." in name:
            raise HubError(400, f"Invalid repo name: {name!r}")
        repo_id = f"{namespace}/{name}"
        url = f"{self.endpoint}/{URL_PREFIX[repo_type]}{repo_id}"
        private = payload.get("visibility") == "private" or payload.get("private") is True
        try:
            self.store.create_repo(repo_type, repo_id, private, user)
        except HubError as e:
            if e.status == 409:
                self._send_json({"error": e.message, "url": url}, 409, {"X-Error-Message": e.message})
                return
            raise
        self._send_json({"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]})

    def delete_repo(self) -> None:
        """`DELETE /api/repos/delete`."""
        user = self._require_user()
        payload = self._json() or {}
        repo_id = f"{payload.get('organization') or user}/{payload.get('name')}"
        self.store.delete_repo(payload.get("type") or "model", repo_id)
        self._send_json({})

    def validate_yaml(self) -> None:
        """`POST /api/validate-yaml`: accept any model card metadata."""
        self._json()
        self._send_json({"errors": [], "warnings": []})

    def info(self, plural: str, repo: str, rev: str | None = None) -> None:
        """`GET /api/{type}s/{repo_id}[/revision/{rev}]`: repo info with `sha` and `siblings`."""
        repo_obj = self._repo(TYPE_FROM_PLURAL[plural], repo)
        commit = self._commit(repo_obj, rev or DEFAULT_BRANCH)
        blobs = self._flag("blobs")
        siblings = []
        for path, entry in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling.update(size=entry.size, blobId=entry.blob_id)
                if entry.lfs:
                    sibling["lfs"] = {"size": entry.size, "sha256": entry.sha256, "pointerSize": entry.pointer_size}
            siblings.append(sibling)
        self._send_json(
            {
                "_id": hashlib.sha1(repo_obj.url_path.encode()).hexdigest()[:24],
                "id": repo_obj.repo_id,
                "author": repo_obj.repo_id.split("/")[0],
                "sha": commit.id,
                "lastModified": commit.date,
                "createdAt": repo_obj.created_at,
                "private": repo_obj.private,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
                "usedStorage": sum(entry.size for entry in commit.files.values()),
            }
        )

    def tree(self, plural: str, repo: str, rev: str, path: str | None = None) -> None:
        """`GET /api/{type}s/{repo_id}/tree/{rev}[/{path}]` (`recursive`, `expand`), one page without `Link`."""
        commit = self._commit(self._repo(TYPE_FROM_PLURAL[plural], repo), rev)
        base = (path or "").strip("/")
        if base and not any(p.startswith(base + "/") for p in commit.files):
            raise HubError(404, f"Entry not found: {base}", "EntryNotFound", {"X-Repo-Commit": commit.id})
        self._send_json(_tree_entries(commit, base, self._flag("recursive"), self._flag("expand")))

    def paths_info(self, plural: str, repo: str, rev: str) -> None:
        """`POST /api/{type}s/{repo_id}/paths-info/{rev}`: form (or JSON) `paths`, `expand`; unknown paths skipped."""
        commit = self._commit(self._repo(TYPE_FROM_PLURAL[plural], repo), rev)
        if "json" in self.headers.get("Content-Type", ""):
            form = self._json() or {}
            paths, expand = list(form.get("paths", [])), bool(form.get("expand"))
        else:
            form = parse_qs(self._body().decode(errors="replace"))
            paths, expand = form.get("paths", []), form.get("expand", ["false"])[-1].lower() == "true"
        result = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                result.append(_file_json(path, commit.files[path], commit if expand else None))
            elif any(p.startswith(path + "/") for p in commit.files):
                result.extend(e for e in _tree_entries(commit, "", True, expand) if e["path"] == path)
        self._send_json(result)

    def refs(self, plural: str, repo: str) -> None:
        """`GET /api/{type}s/{repo_id}/refs[?include_prs=1]`."""
        repo_obj = self._repo(TYPE_FROM_PLURAL[plural], repo)

        def listing(names: Mapping[str, str], prefix: str) -> list[dict[str, str]]:
            return [{"name": n, "ref": prefix + n, "targetCommit": c} for n, c in sorted(names.items())]

        payload: dict[str, Any] = {
            "branches": listing(repo_obj.branches, "refs/heads/"),
            "tags": listing(repo_obj.tags, "refs/tags/"),
            "converts": [],
        }
        if self._flag("include_prs"):
            payload["pullRequests"] = listing(repo_obj.pulls, "")
        self._send_json(payload)

    def commits(self, plural: str, repo: str, rev: str) -> None:
        """`GET /api/{type}s/{repo_id}/commits/{rev}`: history, newest first."""
        repo_obj = self._repo(TYPE_FROM_PLURAL[plural], repo)
        commit: Commit | None = self._commit(repo_obj, rev)
        history = []
        while commit is not None:
            history.append(
                {
                    "id": commit.id,
                    "title": commit.title,
                    "message": commit.description,
                    "authors": [{"user": commit.author, "avatar": None}],
                    "date": commit.date,
                }
            )
            commit = repo_obj.commits.get(commit.parent) if commit.parent else None
        self._send_json(history)

    def preupload(self, plural: str, repo: str, rev: str) -> None:
        """`POST /api/{type}s/{repo_id}/preupload/{rev}`: `uploadMode` (lfs/regular), `shouldIgnore`, remote `oid`."""
        self._require_user()
        commit = self._commit(self._repo(TYPE_FROM_PLURAL[plural], repo), rev)
        payload = self._json() or {}
        files = []
        for item in payload.get("files", []):
            path = check_path(item.get("path"))
            try:
                sample = base64.b64decode(item.get("sample") or "")
            except ValueError as e:
                raise HubError(400, f"Invalid sample for {path}") from e
            mode = self.store.upload_mode(commit, path, int(item.get("size") or 0), sample)
            existing = commit.files.get(path)
            files.append(
                {
                    "path": path,
                    "uploadMode": mode,
                    "shouldIgnore": False,
                    "oid": existing.etag if existing is not None else None,
                }
            )
        self._send_json({"files": files, "commitOid": commit.id})

    def commit(self, plural: str, repo: str, rev: str) -> None:
        """`POST /api/{type}s/{repo_id}/commit/{rev}`: NDJSON header + operations."""
        user = self._require_user()
        repo_obj = self._repo(TYPE_FROM_PLURAL[plural], repo)
        header: Mapping[str, Any] | None = None
        operations: list[tuple[str, Mapping[str, Any]]] = []
        for line in self._body().splitlines():
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError as e:
                raise HubError(400, "Commit payload is not valid NDJSON") from e
            if item.get("key") == "header":
                header = item.get("value") or {}
            else:
                operations.append((item.get("key"), item.get("value") or {}))
        if header is None:
            raise HubError(400, "Commit payload has no header line")
        create_pr = self._flag("create_pr")
        commit, pr_ref = self.store.commit(repo_obj, rev, header, operations, user, create_pr)
        payload = {
            "success": True,
            "commitOid": commit.id,
            "commitUrl": f"{self.endpoint}/{repo_obj.url_path}/commit/{commit.id}",
            "hookOutput": "",
        }
        if pr_ref is not None:
            payload["pullRequestUrl"] = f"{self.endpoint}/{repo_obj.url_path}/discussions/{pr_ref.rsplit('/', 1)[1]}"
        self._send_json(payload)

    def branch(self, plural: str, repo: str, name: str) -> None:
        """`POST /api/{type}s/{repo_id}/branch/{name}` (`startingPoint`) and `DELETE` of the same."""
        self._require_user()
        repo_obj = self._repo(TYPE_FROM_PLURAL[plural], repo)
        if self.command == "DELETE":
            self.store.delete_ref(repo_obj, "branch", name)
        else:
            start = (self._json() or {}).get("startingPoint") or DEFAULT_BRANCH
            self.store.create_ref(repo_obj, "branch", name, self._commit(repo_obj, start))
        self._send_json({})

    def tag(self, plural: str, repo: str, rev: str) -> None:
        """`POST /api/{type}s/{repo_id}/tag/{rev}` (`tag`); `DELETE .../tag/{tag}`."""
        self._require_user()
        repo_obj = self._repo(TYPE_FROM_PLURAL[plural], repo)
        if self.command == "DELETE":
            self.store.delete_ref(repo_obj, "tag", rev)
        else:
            name = (self._json() or {}).get("tag")
            self.store.create_ref(repo_obj, "tag", str(name or ""), self._commit(repo_obj, rev))
        self._send_json({})
