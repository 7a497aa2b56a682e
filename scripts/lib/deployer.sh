# shellcheck shell=bash
# Sourced by scripts/deploy, users, dlq, provision and teardown; needs ROOT. Runs a qcompute module
# with this checkout's code (packages/qcompute/src) in .cache/deploy-venv: a virtualenv holding only
# the shared package's declared dependencies (boto3, structlog, werkzeug) and its `local` extra
# (localstack-client, for --local), pinned by lock.txt. It is made once, quietly, and again only when
# those pins, the declared dependencies or the Python change.
# PYTHON names an interpreter that already has them (the tests' own venv): then no venv is made.
DEPLOY_VENV=$ROOT/.cache/deploy-venv

ensure_deploy_venv() {
  local python=python3 stamp
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: these scripts need Python 3.11 or newer as python3 (see README, Deploy to AWS)" >&2
    exit 2
  fi
  stamp=$(cd "$ROOT" && { "$python" --version; cat requirements/lock.txt packages/qcompute/pyproject.toml; } |
    sha256sum | cut -c1-16)
  if [ "$(cat "$DEPLOY_VENV/.stamp" 2>/dev/null)" = "$stamp" ]; then return; fi
  mkdir -p "$ROOT/.cache"
  # Two commands started at once make it once (flock is util-linux's; without it, no lock).
  if command -v flock >/dev/null; then
    exec 8>"$ROOT/.cache/deploy-venv.lock"
    flock 8
    if [ "$(cat "$DEPLOY_VENV/.stamp" 2>/dev/null)" = "$stamp" ]; then return; fi
  fi
  echo "making the deployer's environment in .cache/deploy-venv (once; about a minute)" >&2
  rm -rf "$DEPLOY_VENV"
  "$python" -m venv "$DEPLOY_VENV"
  local requirements
  # The package's own dependency list, so this venv and the images never disagree on what it needs.
  requirements=$("$DEPLOY_VENV/bin/python" -c '
import sys, tomllib
with open(sys.argv[1], "rb") as file:
    project = tomllib.load(file)["project"]
# localstack-client: the tools'"'"' --local (qcompute.local).
print("\n".join(project["dependencies"] + project["optional-dependencies"]["local"]))' "$ROOT/packages/qcompute/pyproject.toml")
  # shellcheck disable=SC2086  # one requirement per word
  if ! "$DEPLOY_VENV/bin/pip" install --quiet --disable-pip-version-check \
      -c "$ROOT/requirements/lock.txt" $requirements >"$ROOT/.cache/deploy-venv.log" 2>&1; then
    cat "$ROOT/.cache/deploy-venv.log" >&2
    echo "error: could not install the deployer's dependencies (above); run the command again" >&2
    rm -rf "$DEPLOY_VENV"
    exit 1
  fi
  echo "$stamp" > "$DEPLOY_VENV/.stamp"
}

# run_qcompute MODULE ARGS...: exec python -m MODULE with this checkout's package first on the path.
run_qcompute() {
  local module=$1 python
  shift
  if [ -n "${PYTHON:-}" ]; then
    python=$PYTHON
  else
    ensure_deploy_venv
    python=$DEPLOY_VENV/bin/python
  fi
  PYTHONPATH=$ROOT/packages/qcompute/src${PYTHONPATH:+:$PYTHONPATH} exec "$python" -m "$module" "$@"
}
