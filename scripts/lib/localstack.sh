# shellcheck shell=bash
# Sourced by scripts/test, scripts/soak and scripts/bench; needs ROOT. Runs LocalStack 4.14.0 as a plain process
# ("host mode": no image can be pulled here) at LOCALSTACK_ENDPOINT, from its own Python 3.13
# virtualenv built from the frozen requirement set, and stops it when the calling script exits.
# shellcheck source=scripts/lib/python313.sh
. "$ROOT/scripts/lib/python313.sh"
LOCALSTACK_VENV=$ROOT/.cache/localstack-venv

# LocalStack's own virtualenv, rebuilt only when the frozen set changes.
ensure_localstack_venv() {
  if [ ! -x "$LOCALSTACK_VENV/bin/python" ] || ! cmp -s "$ROOT/requirements/localstack-host.txt" "$LOCALSTACK_VENV/.requirements"; then
    printf '\n==> installing LocalStack 4.14.0 (host mode) in .cache/localstack-venv\n'
    rm -rf "$LOCALSTACK_VENV"
    "$(find_python313)" -m venv "$LOCALSTACK_VENV"
    # --no-deps: the frozen set is complete, and pip's own choices break LocalStack 4.14.
    "$LOCALSTACK_VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$ROOT/requirements/localstack-host.txt"
    cp "$ROOT/requirements/localstack-host.txt" "$LOCALSTACK_VENV/.requirements"
  fi
}

start_localstack() {
  export LOCALSTACK_ENDPOINT=${LOCALSTACK_ENDPOINT:-http://127.0.0.1:4566}
  local log=$ROOT/test-artifacts/localstack.log
  if curl -fsS "$LOCALSTACK_ENDPOINT/_localstack/health" >/dev/null 2>&1; then
    echo "using the LocalStack already answering at $LOCALSTACK_ENDPOINT"
    return
  fi
  ensure_localstack_venv
  printf '\n==> starting LocalStack on %s\n' "${LOCALSTACK_ENDPOINT#http://}"
  mkdir -p "$ROOT/test-artifacts" "$ROOT/.cache/localstack-data"
  GATEWAY_LISTEN=${LOCALSTACK_ENDPOINT#http://} SERVICES=sqs,sns,s3,sts,ssm DNS_ADDRESS=0 SKIP_SSL_CERT_DOWNLOAD=1 \
    DISABLE_EVENTS=1 FILESYSTEM_ROOT="$ROOT/.cache/localstack-data" \
    "$LOCALSTACK_VENV/bin/python" -m localstack.runtime.main > "$log" 2>&1 &
  LOCALSTACK_PID=$!
  trap 'kill "$LOCALSTACK_PID" 2>/dev/null; wait "$LOCALSTACK_PID" 2>/dev/null || true' EXIT
  for _ in $(seq 1 120); do
    if curl -fsS "$LOCALSTACK_ENDPOINT/_localstack/health" >/dev/null 2>&1; then return; fi
    if ! kill -0 "$LOCALSTACK_PID" 2>/dev/null; then
      echo "LocalStack exited; its log:" >&2; tail -n 40 "$log" >&2; exit 1
    fi
    sleep 1
  done
  echo "LocalStack did not become healthy in 120 s" >&2; exit 1
}
