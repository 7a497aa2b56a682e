"""A copy of the repository as a fresh clone would have it: its files (committed or not yet), no .cache."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from harness.services import ROOT


def fresh_clone(destination: Path) -> Path:
    """Copy the repository's files to `destination` as a clone would have them, without .cache."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a file deleted but not yet committed is listed too
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination
