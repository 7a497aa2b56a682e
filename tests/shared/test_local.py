"""--local ignores the shell's AWS settings: an endpoint or a profile set for real AWS (or a profile
that does not exist on this machine) never redirects or breaks the operator tools' local session."""

from __future__ import annotations

import pytest

from qcompute import local


def test_the_local_session_ignores_the_shells_profile_and_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile-here")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://sqs.eu-west-1.amazonaws.com")
    monkeypatch.setattr("boto3.DEFAULT_SESSION", None)
    sqs = local.session("eu-west-1").client("sqs")
    assert sqs.meta.endpoint_url == f"http://{local.endpoint_host()}"
    assert sqs.meta.region_name == "eu-west-1"
    assert sqs._request_signer._credentials.access_key == "test"
