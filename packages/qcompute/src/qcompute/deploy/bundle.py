"""The application bundle: exactly what building and rolling out the stack needs on the instance.

`deploy up` uploads it to the stack's bucket and the instance fetches it with its own role, so no git
host is needed and no credentials are copied. The archive is reproducible byte for byte (sorted
entries, fixed times and owners), so its digest tells whether the code changed since the last rollout.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import ClientError

from qcompute.aws import error_code
from qcompute.deploy.session import DeployError, Deployment
from qcompute.provision import Change

# compose.yaml (with the instance's logging override) and what its builds read: the Dockerfiles COPY
# only these (see .dockerignore).
CONTENTS = (
    "compose.yaml",
    "compose.aws.yaml",
    ".dockerignore",
    "requirements/lock.txt",
    "packages/qcompute",
    "services",
    "scripts/rollout",  # the release script rolls the instance over with it
)
# Caches and build output, never sources; hidden files (.env, editor files) are skipped as well.
_SKIPPED_DIRS = {"__pycache__", "build", "dist"}
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
DIGEST_METADATA = "sha256"


@dataclass(frozen=True)
class Bundle:
    data: bytes  # the .tar.gz
    digest: str  # sha256 of the uncompressed tar: independent of the zlib version
    files: tuple[str, ...]

    @property
    def short(self) -> str:
        return self.digest[:12]


def is_source_root(path: Path) -> bool:
    return all((path / name).exists() for name in CONTENTS)


def find_source(start: Path | None = None) -> Path:
    """The repository to deploy: the working directory or one above it, else the one holding this code."""
    start = (start or Path.cwd()).resolve()
    here = Path(__file__).resolve()
    for candidate in (start, *start.parents, *here.parents):
        if is_source_root(candidate):
            return candidate
    raise DeployError("cannot find the qcompute repository: run from inside it or pass --source DIR")


def _skipped(relative: Path) -> bool:
    parts = relative.parts
    if any(part.startswith(".") for part in parts) and relative != Path(".dockerignore"):
        return True
    if any(part in _SKIPPED_DIRS or part.endswith(".egg-info") for part in parts[:-1]):
        return True
    return relative.name.endswith(_SKIPPED_SUFFIXES)


def bundle_files(root: Path) -> list[str]:
    """The bundle's files, as sorted paths relative to the repository root."""
    if not is_source_root(root):
        missing = [name for name in CONTENTS if not (root / name).exists()]
        raise DeployError(
            f"{root} is not the qcompute repository (missing {', '.join(missing)}): pass --source"
        )
    found = []
    for entry in CONTENTS:
        path = root / entry
        candidates = [path] if path.is_file() else path.rglob("*")
        for candidate in candidates:
            relative = candidate.relative_to(root)
            # Symbolic links could point anywhere on this machine: only regular files travel.
            if candidate.is_file() and not candidate.is_symlink() and not _skipped(relative):
                found.append(relative.as_posix())
    return sorted(found)


def build(root: Path) -> Bundle:
    files = bundle_files(root)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in files:
            source = root / name
            info = tarfile.TarInfo(name)
            info.size = source.stat().st_size
            info.mode = 0o755 if source.stat().st_mode & 0o100 else 0o644
            info.mtime = 0
            with source.open("rb") as content:
                archive.addfile(info, content)
    tar_bytes = raw.getvalue()
    packed = io.BytesIO()
    # mtime=0 and no file name in the header: the same tree always gives the same bytes.
    with gzip.GzipFile(filename="", fileobj=packed, mode="wb", mtime=0) as compressed:
        compressed.write(tar_bytes)
    return Bundle(packed.getvalue(), hashlib.sha256(tar_bytes).hexdigest(), tuple(files))


def uploaded_digest(deployment: Deployment) -> str | None:
    """The digest of the bundle in the bucket, or None if there is none (or no bucket yet)."""
    names = deployment.names
    try:
        head = deployment.clients.s3.head_object(Bucket=names.log_bucket, Key=names.bundle_key)
    except ClientError as error:
        if error_code(error) in {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}:
            return None
        raise
    return head.get("Metadata", {}).get(DIGEST_METADATA)


def ensure_uploaded(deployment: Deployment, bundle: Bundle, dry_run: bool) -> Change:
    names = deployment.names
    current = uploaded_digest(deployment)
    label = f"s3://{names.log_bucket}/{names.bundle_key}"
    detail = f"{len(bundle.files)} files, {bundle.short}"
    if current == bundle.digest:
        return Change("bundle", label, "ok", detail)
    if not dry_run:
        deployment.clients.s3.put_object(
            Bucket=names.log_bucket,
            Key=names.bundle_key,
            Body=bundle.data,
            ContentType="application/gzip",
            Metadata={DIGEST_METADATA: bundle.digest},
        )
    return Change("bundle", label, "create" if current is None else "update", detail)
