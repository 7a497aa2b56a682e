"""Test-only: record every AWS call a service process makes, as JSON lines in $RECORD_AWS_CALLS.

Put this folder on a service's PYTHONPATH and Python imports it at start-up; the services' own code
is unchanged. tests/shared/test_least_privilege.py compares the calls with the IAM policies.
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
    _KEPT = ("QueueUrl", "QueueName", "TopicArn", "Bucket", "Key", "Delete", "tags", "Tags", "Prefix")

    def _recorded(client, operation_name, api_params):
        entry = {
            "service": client.meta.service_model.endpoint_prefix,
            "operation": operation_name,
            "params": {k: v for k, v in api_params.items() if k in _KEPT},
        }
        with _lock, open(_path, "a") as log:
            log.write(json.dumps(entry, default=str) + "\n")
        return _make_api_call(client, operation_name, api_params)

    botocore.client.BaseClient._make_api_call = _recorded
