#!/bin/sh
# LocalStack runs this once its services are ready; compose.local.yaml's healthcheck turns green only
# after it has succeeded. It provisions the stack with the project's own code (qcompute.provision),
# mounted at /opt/qcompute, using the boto3 that LocalStack's Python already has.
set -eu
export AWS_ENDPOINT_URL=http://localhost:4566 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
PYTHONPATH=/opt/qcompute exec /opt/code/localstack/.venv/bin/python -m qcompute.cli provision
