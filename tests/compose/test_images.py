"""The images users get: small, non-root, and free of keys, credentials and this machine's CA."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

import certifi
import pytest

from harness.secrets import leaks

pytestmark = pytest.mark.compose

IMAGES = [f"qcompute-{service}:latest" for service in ("frontend", "worker", "logger")]
PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)


def _docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def _certificates(data: bytes) -> set[bytes]:
    return {b"".join(cert.split()) for cert in PEM.findall(data)}


def _private_authorities() -> set[bytes]:
    """Certificates this machine trusts beyond the public roots: its proxy's CA, say.

    The public roots are what Debian's ca-certificates package ships (on this machine) and certifi;
    anything else in the bundle pip is told to trust was added locally.
    """
    bundle = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
    if not bundle.exists():
        return set()
    public = _certificates(Path(certifi.where()).read_bytes())
    for root in Path("/usr/share/ca-certificates").rglob("*.crt"):
        public |= _certificates(root.read_bytes())
    return _certificates(bundle.read_bytes()) - public


def _layer_files(image: str):
    """Every regular file of every layer of the image, as (layer, path, bytes)."""
    saved = subprocess.run(["docker", "save", image], capture_output=True, check=True, timeout=600).stdout
    with tarfile.open(fileobj=io.BytesIO(saved)) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
        for layer in manifest[0]["Layers"]:
            with tarfile.open(fileobj=archive.extractfile(layer)) as layer_tar:
                for member in layer_tar:
                    if member.isfile():
                        yield layer, member.name, layer_tar.extractfile(member).read()


@pytest.mark.parametrize("image", IMAGES)
def test_no_layer_holds_keys_credentials_or_private_certificate_authorities(composed, image: str) -> None:
    private = _private_authorities()
    findings = []
    for layer, path, data in _layer_files(image):
        findings += [f"{layer}:{path}: {pattern}" for pattern in leaks(data)]
        if private and b"CERTIFICATE" in data and _certificates(data) & private:
            findings.append(f"{layer}:{path}: a certificate authority private to this machine")
    assert findings == []
    history = _docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image)
    assert "PIP_CERT" not in history
    assert "BEGIN CERTIFICATE" not in history


def test_image_sizes(composed) -> None:
    sizes = {}
    for image in IMAGES:
        sizes[image] = int(_docker("image", "inspect", "--format", "{{.Size}}", image)) / 1e6
        assert _docker("image", "inspect", "--format", "{{.Config.User}}", image) == "10001:10001", image
    print("image sizes (MB): " + ", ".join(f"{name} {mb:.0f}" for name, mb in sizes.items()))
    # The base image is about 120 MB; what we add is the virtualenv and our code.
    assert all(mb < 250 for mb in sizes.values()), sizes
