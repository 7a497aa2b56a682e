"""Test-only: record every AWS call a process makes, as JSON lines in $RECORD_AWS_CALLS.

Put this folder on a process's PYTHONPATH and Python imports it at start-up; the code under test is
unchanged. tests/shared/test_least_privilege.py compares the services' calls with the IAM policies;
tests/deploy/test_iam_lint.py lints every policy document `scripts/deploy` sends.
"""

import json
import os
import threading

import botocore.client

_path = os.environ.get("RECORD_AWS_CALLS")
if _path:
    _lock = threading.Lock()
    _make_api_call = botocore.client.BaseClient._make_api_call
    # The parameters that name the resource a call touches (and the tags it sets).
    _KEPT = (
        "QueueUrl",
        "QueueName",
        "TopicArn",
        "Bucket",
        "Key",
        "Delete",
        "tags",
        "Tags",
        "Prefix",
        "RoleName",
        "Path",  # SSM: a path of parameters, and a parameter's name (never its value)
        "Name",
    )

    def _policies(value, path):
        """Every policy document in a parameter, by where it sits (e.g. `Attributes.Policy`).

        Found by content, not by parameter name: each API names its policy differently
        (PolicyDocument, AssumeRolePolicyDocument, Policy, policyDocument, an attribute...).
        """
        if isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                value = json.loads(value)
            except ValueError:
                return {}
        if isinstance(value, dict):
            if "Statement" in value:
                return {path: value}
            items = value.items()
        elif isinstance(value, list):
            items = ((str(index), item) for index, item in enumerate(value))
        else:
            return {}
        return {found: doc for key, item in items for found, doc in _policies(item, f"{path}.{key}").items()}

    def _recorded(client, operation_name, api_params):
        entry = {
            "service": client.meta.service_model.endpoint_prefix,
            "operation": operation_name,
            "params": {k: v for k, v in api_params.items() if k in _KEPT},
        }
        policies = {
            found: document
            for name, value in api_params.items()
            for found, document in _policies(value, name).items()
        }
        if policies:
            entry["policies"] = policies
        with _lock, open(_path, "a") as log:
            log.write(json.dumps(entry, default=str) + "\n")
        return _make_api_call(client, operation_name, api_params)

    botocore.client.BaseClient._make_api_call = _recorded
