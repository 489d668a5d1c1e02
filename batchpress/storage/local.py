from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath


class LocalStorage:
    """Files under one root, written to a temp file and renamed into place (atomic on one filesystem)."""

    def __init__(self, root: Path, tmp_dir: Path, base_url: str) -> None:
        self.root = root
        self.tmp_dir = tmp_dir
        self.base_url = base_url.rstrip("/")

    def path_for(self, key: str) -> Path:
        parts = PurePosixPath(key).parts
        if not parts or any(part in ("..", ".", "") or part.startswith("/") for part in parts):
            raise ValueError(f"unsafe storage key {key!r}")
        return self.root.joinpath(*parts)

    def save(self, key: str, data: bytes, content_type: str) -> str:
        target = self.path_for(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp_dir, prefix="upload-")
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(data)
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return self.url_for(key)

    def delete(self, key: str) -> None:
        self.path_for(key).unlink(missing_ok=True)

    def url_for(self, key: str) -> str:
        return f"{self.base_url}/{key}"
