"""Moving file content: the Git LFS basic-transfer endpoints (batch, verify, objects) and `resolve` downloads."""

from __future__ import annotations

import json
from typing import Any

from .handler import BaseHubHandler
from .revisions import SHA256_HEX, TYPE_FROM_PLURAL, HubError


class TransferHandler(BaseHubHandler):
    """Endpoints that upload or download content: LFS batch/verify/objects and `/{repo}/resolve/{rev}/{path}`."""

    def lfs_batch(self, prefix: str | None, repo: str) -> None:
        """`POST /{repo}.git/info/lfs/objects/batch`: basic-transfer `upload` (and `download`) actions."""
        repo_obj = self._repo(TYPE_FROM_PLURAL.get(prefix or "models", "model"), repo)
        payload = self._json() or {}
        operation = payload.get("operation")
        if operation == "upload":
            self._require_user()
        elif operation != "download":
            raise HubError(400, f"Unsupported LFS operation: {operation!r}")
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj.get("oid"), obj.get("size")
            item: dict[str, Any] = {"oid": str(oid), "size": size if isinstance(size, int) else -1}
            if not isinstance(oid, str) or not SHA256_HEX.fullmatch(oid) or not isinstance(size, int) or size < 0:
                item["error"] = {"code": 422, "message": "Invalid oid or size"}
            elif operation == "download":
                if self.store.has_object(oid, size):
                    item["actions"] = {"download": {"href": f"{self.endpoint}/_lfs/{oid}", "header": {}}}
                else:
                    item["error"] = {"code": 404, "message": "Object does not exist"}
            elif not self.store.has_object(oid, size):
                self.store.expect_lfs(oid, size)
                item["authenticated"] = True
                item["actions"] = {
                    "upload": {"href": f"{self.endpoint}/_lfs/{oid}"},
                    "verify": {"href": f"{self.endpoint}/{repo_obj.url_path}.git/info/lfs/objects/verify"},
                }
            objects.append(item)
        body = json.dumps({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}).encode()
        self._send(200, body, ctype="application/vnd.git-lfs+json")

    def lfs_verify(self, prefix: str | None, repo: str) -> None:
        """`POST /{repo}.git/info/lfs/objects/verify`: 404 unless the object was uploaded with that size."""
        self._require_user()
        self._repo(TYPE_FROM_PLURAL.get(prefix or "models", "model"), repo)
        payload = self._json() or {}
        if not self.store.has_object(str(payload.get("oid")), payload.get("size")):
            raise HubError(404, "LFS object not found")
        self._send_json({"message": "ok"})

    def lfs_object(self, oid: str) -> None:
        """`PUT /_lfs/{oid}` (the pre-signed upload URL, checked against the oid) and `GET|HEAD` of it."""
        if self.command == "PUT":
            self.store.put_stream(self._iter_body(), oid, self.store.expected_lfs_size(oid))
            self._send(200, b"", {"ETag": f'"{oid}"'})
        elif not self.store.has_object(oid):
            raise HubError(404, "LFS object not found")
        else:
            self._send_object(oid, self.store.object_path(oid).stat().st_size, {"ETag": f'"{oid}"'})

    def resolve(self, prefix: str | None, repo: str, rev: str, path: str) -> None:
        """`GET|HEAD /[{type}s/]{repo_id}/resolve/{rev}/{path}`: file content with the Hub's metadata headers."""
        repo_obj = self._repo(TYPE_FROM_PLURAL.get(prefix or "models", "model"), repo)
        commit = self._commit(repo_obj, rev)
        entry = commit.files.get(path)
        if entry is None:
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.id})
        headers = {"X-Repo-Commit": commit.id, "ETag": f'"{entry.etag}"'}
        if entry.lfs:
            headers.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(entry.size)})
        self._send_object(entry.sha256, entry.size, headers)
