"""Run folders, manifests and atomic writes.

Every file a run writes goes through :func:`atomic_write_bytes` (temp file + ``os.replace``) or, for checkpoint
directories, :func:`atomic_directory` (write into a temp sibling, then rename), so a killed process never leaves a
half-written file or checkpoint that a resume would load.

A manifest (``manifest.json``) records the git commit, parameters, package versions, data hashes and the
release-faithful / corrected flags of a run. Secrets never go in: only the *names* of environment variables. Data
paths are recorded relative to the run (``run:…``) or the checkout (:func:`portable_path`), so a run folder copied to
another machine still names its data.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PACKAGES = (
    "torch", "torchvision", "transformers", "tokenizers", "accelerate", "decord", "av", "numpy", "openai",
    "papermill", "plotly", "fl1-core",
)
_SECRET_WORDS = ("api_key", "apikey", "secret", "password", "token_value", "authorization")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temp file in the same folder, fsync, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False, default=str) + "\n")


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a JSONL file ([] if it does not exist); a torn last line (killed writer) is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return rows


def write_jsonl(path: str | Path, rows: list[dict]) -> Path:
    """Replace a JSONL file atomically with ``rows``."""
    return atomic_write_text(path, "".join(json.dumps(r, default=str) + "\n" for r in rows))


def append_jsonl(path: str | Path, row: dict) -> None:
    """Append one JSON line and flush it to disk (metrics logs; resumes rewrite the file up to their step)."""
    append_jsonl_rows(path, [row])


def append_jsonl_rows(path: str | Path, rows: list[dict]) -> None:
    """Append JSON lines in one write and flush them to disk."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(row, default=str) + "\n" for row in rows))
        fh.flush()
        os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_directory(final: str | Path) -> Iterator[Path]:
    """Yield a temp directory next to ``final``; on success it replaces ``final`` in one rename.

    If the block raises (or the process dies), ``final`` is untouched and the temp directory is removed (or left as
    ``.<name>.tmp-*``, which loaders never read).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        old = None
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in ``chunk``-byte blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def git_commit(repo: str | Path | None = None) -> str | None:
    """Current commit of the workbook checkout (``+dirty`` if it has uncommitted changes), None outside git."""
    repo = Path(repo or Path(__file__).resolve().parents[1])
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True, text=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


@functools.cache
def cpu_description() -> dict[str, Any]:
    """The CPU a run computed on: its model name, logical cores and the vector kernels torch dispatches to (``AVX2``,
    ``AVX512``, ...). Float results on CPU can differ between kernel sets, so a manifest records them."""
    model = platform.processor() or None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        import torch

        capability = torch.backends.cpu.get_cpu_capability()
    except (ImportError, AttributeError):
        capability = None
    return {"model": model, "logical_cores": os.cpu_count(), "torch_kernels": capability}


def redact(obj: Any) -> Any:
    """Drop values of keys that look like secrets (defence in depth: configs should only hold env var names)."""
    if isinstance(obj, dict):
        return {k: ("<redacted>" if any(w in str(k).lower() for w in _SECRET_WORDS) else redact(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    return obj


REPO_ROOT = Path(__file__).resolve().parents[1]


def portable_path(path: str | Path, run_dir: str | Path) -> str:
    """``path`` as a manifest records it: relative to the run folder when inside it, else relative to the checkout
    (``data/world/sft.json``), else as given (a dataset elsewhere on the machine stays absolute)."""
    resolved = Path(path).resolve()
    for root, prefix in ((Path(run_dir).resolve(), "run:"), (REPO_ROOT, "")):
        if resolved.is_relative_to(root):
            return prefix + resolved.relative_to(root).as_posix()
    return str(path)


def repo_path(path: str | Path) -> Path:
    """A path a notebook parameter, recipe or config names: absolute as given, relative ones against the checkout's
    root (``data/world``, ``artifacts/world_base_reading``), whatever the working directory."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def resolve_data_path(recorded: str | Path, run_dir: str | Path) -> Path:
    """Inverse of :func:`portable_path`: ``run:x`` → ``run_dir/x``; a relative path → the checkout's."""
    text = str(recorded)
    return Path(run_dir) / text[4:] if text.startswith("run:") else repo_path(text)


def run_directory(root: str | Path = "runs", run_id: str | None = None) -> Path:
    """``root/<run_id>`` (created); the default id is a UTC timestamp."""
    run_id = run_id or _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    path = Path(root) / run_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_manifest(
    run_dir: str | Path,
    *,
    parameters: dict[str, Any] | None = None,
    data_files: list[str | Path] | None = None,
    flags: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write (or update) ``run_dir/manifest.json``; existing sections are merged, the new values win."""
    path = Path(run_dir) / "manifest.json"
    manifest: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    manifest.update(
        {
            "updated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "git_commit": git_commit(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpu": cpu_description(),
            "packages": package_versions(),
        }
    )
    if parameters is not None:
        portable = {k: portable_path(v, run_dir) if isinstance(v, str) and os.path.isabs(v) else v
                    for k, v in redact(parameters).items()}
        manifest["parameters"] = {**manifest.get("parameters", {}), **portable}
    if data_files:
        hashes = manifest.get("data_hashes", {})
        hashes.update({portable_path(p, run_dir): sha256_file(p) for p in data_files if Path(p).is_file()})
        manifest["data_hashes"] = hashes
    if flags is not None:
        manifest["flags"] = {**manifest.get("flags", {}), **flags}
    if extra:
        manifest.update(redact(extra))
    atomic_write_json(path, manifest)
    return manifest
