# shellcheck shell=bash
# Sourced by scripts/test, scripts/soak and the benchmarks; needs ROOT. Builds .cache/venv, the
# project's virtualenv with every pinned package, and .cache/bench-venv, the same plus the benchmarks'
# (requirements/bench.txt); each is rebuilt only when its pins change.
VENV=$ROOT/.cache/venv
BENCH_VENV=$ROOT/.cache/bench-venv

ensure_venv() {
  local stamp
  stamp=$(cd "$ROOT" && cat requirements/dev.txt requirements/lock.txt packages/qcompute/pyproject.toml | sha256sum | cut -c1-16)
  if [ "$(cat "$VENV/.stamp" 2>/dev/null)" != "$stamp" ]; then
    printf '\n==> installing the pinned test environment in .cache/venv\n'
    rm -rf "$VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
    (cd "$ROOT" && "$VENV/bin/pip" install --quiet --disable-pip-version-check -r requirements/dev.txt -c requirements/lock.txt)
    echo "$stamp" > "$VENV/.stamp"
  fi
}

_as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_bench_venv() {
  local stamp
  stamp=$(cd "$ROOT" && cat requirements/dev.txt requirements/lock.txt requirements/bench.txt packages/qcompute/pyproject.toml | sha256sum | cut -c1-16)
  if [ "$(cat "$BENCH_VENV/.stamp" 2>/dev/null)" != "$stamp" ]; then
    printf '\n==> installing the benchmark environment in .cache/bench-venv\n'
    rm -rf "$BENCH_VENV"
    "${PYTHON:-python3}" -m venv "$BENCH_VENV"
    (cd "$ROOT" && "$BENCH_VENV/bin/pip" install --quiet --disable-pip-version-check \
      -r requirements/dev.txt -r requirements/bench.txt -c requirements/lock.txt)
    echo "$stamp" > "$BENCH_VENV/.stamp"
  fi
  # kombu's SQS transport needs pycurl. Its wheel bundles libcurl; where pip had to build it from
  # source instead, it needs libcurl's and OpenSSL's headers from Debian.
  if ! "$BENCH_VENV/bin/python" -c 'import pycurl' 2>/dev/null; then
    printf "\n==> building pycurl against Debian's libcurl\n"
    _as_root apt-get update -qq
    _as_root apt-get install -y -qq libcurl4-openssl-dev libssl-dev >/dev/null
    "$BENCH_VENV/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps \
      --no-binary pycurl "$(grep -i '^pycurl==' "$ROOT/requirements/bench.txt")"
  fi
}
