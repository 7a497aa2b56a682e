"""What a leaked secret looks like, for scanning images and the repository."""

from __future__ import annotations

import re

SECRET_PATTERNS = [
    # A private key with a body (botocore's docs hold "<a very long private key string>" placeholders).
    re.compile(rb"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----\s*[A-Za-z0-9+/=\s]{64}"),
    # An access key id; AWS's documented placeholders (...EXAMPLE, in boto3's own docs) are not keys.
    re.compile(rb"(?<![A-Z0-9])(?:AKIA|ASIA)(?![A-Z0-9]{9}EXAMPLE)[A-Z0-9]{16}(?![A-Z0-9])"),
    # A secret key as a credentials file or an environment holds one: 40 characters of base64.
    re.compile(rb"aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])", re.I),
]


def leaks(data: bytes) -> list[str]:
    """The patterns `data` matches."""
    return [pattern.pattern.decode() for pattern in SECRET_PATTERNS if pattern.search(data)]
