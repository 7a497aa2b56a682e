"""The secret scanner finds real-looking secrets and passes AWS's documented placeholders."""

from __future__ import annotations

import pytest

from harness.secrets import leaks

# Built at run time so that this file itself holds nothing a scanner would flag.
KEY_ID = "AKIA" + "Q3EGRTZ7NVXHJ2KL"
SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYzz9Xq4Lm2T"  # 40 characters
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\n" + "MIIEowIBAAKCAQEA" * 6


@pytest.mark.parametrize(
    "text",
    [KEY_ID, f"aws_secret_access_key = {SECRET}", f'AWS_SECRET_ACCESS_KEY: "{SECRET}"', PRIVATE_KEY],
)
def test_secrets_are_found(text: str) -> None:
    assert leaks(text.encode())


@pytest.mark.parametrize(
    "text",
    [
        "AKIAIOSFODNN7EXAMPLE",
        "aws_secret_access_key=aws_secret_access_key",
        "-----BEGIN DSA PRIVATE KEY-----<a very long private key string>-----END DSA PRIVATE KEY-----",
        "AWS_SECRET_ACCESS_KEY: test",
    ],
)
def test_placeholders_are_not_secrets(text: str) -> None:
    assert leaks(text.encode()) == []
