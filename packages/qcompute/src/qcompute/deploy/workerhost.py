"""What runs on a worker host (scripts/deploy up --worker-hosts): rendered from Python like userdata.py.

- The user data (first boot) installs Docker and the pinned plugins (userdata.host_setup), starts the
  drain watcher, fetches the stack's bundle, builds the worker image only and runs one worker
  container per core; nothing else of the stack runs there, and nothing is ever rolled out to it: a
  host runs the bundle it found at boot until Auto Scaling replaces it.
- The drain watcher (a systemd service) polls the instance metadata (IMDSv2). When Auto Scaling holds
  the host at the group's lifecycle hook to terminate it (target lifecycle state `Terminated`), it
  stops the workers warmly (`docker stop`: SIGTERM, then the container's stop grace period, 60 s in
  compose.yaml, to finish the batch in hand) and completes the lifecycle action, so the host goes
  at once rather than at the hook's timeout. A Spot interruption notice (two minutes' warning) gets
  the same warm stop. What a worker had not finished returns to the queue when its visibility
  timeout ends, as after any crash.

No secret is needed or written: the worker reads none, and compose.yaml's SECRET_KEY (the frontend's)
gets a placeholder only so that the file can be read.
"""

from __future__ import annotations

import shlex

from qcompute.deploy.userdata import APP_DIR, host_setup
from qcompute.names import StackNames

DRAIN_SCRIPT = f"{APP_DIR}/drain.sh"
DRAIN_SERVICE = "qcompute-drain"
POLL_SECONDS = 5
# Compose's labels name each container's service: the drain watcher stops exactly the workers.
WORKER_FILTER = "label=com.docker.compose.service=worker"


def drain_script(names: StackNames, imds: str = "http://169.254.169.254/latest") -> str:
    q = shlex.quote
    return f"""#!/bin/bash
# Stop this worker host's workers warmly before it goes away (group {names.worker_fleet}).
# Usage: drain.sh [--once]   (without --once: check every {POLL_SECONDS} s, as the {DRAIN_SERVICE} service)
set -euo pipefail
export AWS_REGION={q(names.region)}
imds={q(imds)}
# The instance metadata, IMDSv2 (a token first); fails if the path is absent (404).
metadata() {{
  local token
  token=$(curl -fsS -m 2 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "$imds/api/token")
  curl -fsS -m 2 -H "X-aws-ec2-metadata-token: $token" "$imds/meta-data/$1"
}}
# docker stop waits each container's stop timeout (compose's stop_grace_period): the batch in hand ends.
stop_workers() {{
  local ids
  ids=$(docker ps --quiet --filter {WORKER_FILTER})
  echo "drain: $1: stopping the workers warmly (${{ids:-none running}})"
  # shellcheck disable=SC2086 # one id per word
  if [ -n "$ids" ]; then docker stop $ids >/dev/null; fi
}}
check() {{
  local state
  state=$(metadata autoscaling/target-lifecycle-state || echo unknown)
  if [ "$state" = Terminated ]; then
    stop_workers "Auto Scaling terminates this host"
    aws autoscaling complete-lifecycle-action --auto-scaling-group-name {q(names.worker_fleet)} \\
      --lifecycle-hook-name {q(names.drain_hook)} --instance-id "$(metadata instance-id)" \\
      --lifecycle-action-result CONTINUE
    echo "drain: done: Auto Scaling terminates the host now"
    exit 0
  fi
  # Spot gives two minutes: the same warm stop. Auto Scaling's own hook may follow (Terminated above).
  if metadata spot/instance-action >/dev/null 2>&1 && [ -z "${{spot_notice:-}}" ]; then
    spot_notice=1
    stop_workers "Spot interruption notice"
  fi
}}
if [ "${{1:-}}" = --once ]; then
  check
  exit 0
fi
while :; do
  check
  sleep {POLL_SECONDS}
done
"""


def _drain_unit() -> str:
    return f"""[Unit]
Description=qcompute: stop the workers warmly before this host is terminated
After=docker.service
[Service]
ExecStart={DRAIN_SCRIPT}
# Exits 0 once the host may go; a failed call (throttled, say) is tried again.
Restart=on-failure
RestartSec={POLL_SECONDS}
[Install]
WantedBy=multi-user.target
"""


def user_data(names: StackNames) -> str:
    q = shlex.quote
    release = f"{APP_DIR}/release"
    return f"""#!/bin/bash
# First boot of a worker host of stack {names.stack} (Auto Scaling group {names.worker_fleet}); cloud-init
# runs this once, as root. Its output is in /var/log/cloud-init-output.log.
set -euo pipefail
export HOME=${{HOME:-/root}} AWS_REGION={q(names.region)}

{host_setup()}
mkdir -p {APP_DIR}
cat > {DRAIN_SCRIPT} <<'DRAIN'
{drain_script(names)}DRAIN
chmod 700 {DRAIN_SCRIPT}
cat > /etc/systemd/system/{DRAIN_SERVICE}.service <<'UNIT'
{_drain_unit()}UNIT
systemctl daemon-reload
# Before the workers start: a host terminated while it boots still completes its lifecycle action.
systemctl enable --now {DRAIN_SERVICE}

work=$(mktemp -d)
aws s3 cp --only-show-errors {q(f"s3://{names.log_bucket}/{names.bundle_key}")} "$work/bundle.tar.gz"
# Directories must stay readable: the image copies them for an unprivileged user.
(umask 022 && mkdir -p {release} && tar -xzf "$work/bundle.tar.gz" --no-same-owner -C {release})
# The image's tag as on the web host: the digest `scripts/deploy status` shows.
tag=$(gzip -dc "$work/bundle.tar.gz" | sha256sum | cut -c1-12)
rm -rf "$work"
(
  umask 077
  {{
    printf 'STACK_NAME=%s\\nAWS_REGION=%s\\nIMAGE_TAG=%s\\n' {q(names.stack)} "$AWS_REGION" "$tag"
    # compose.yaml requires the frontend's key to be set; no frontend runs here, so none is read.
    printf 'SECRET_KEY=unused-on-a-worker-host\\n'
  }} > {release}/stack.env
)
cd {release}
dc() {{ docker compose --env-file stack.env -f compose.yaml -f compose.aws.yaml "$@"; }}
dc build --quiet worker
# One worker per core; compose.aws.yaml sends their output to the stack's worker log group.
dc up --detach --no-build --scale worker="$(nproc)" --wait worker
echo "worker host: $(nproc) worker(s) of release $tag running"
"""
