# shellcheck shell=bash
# Sourced by scripts/test and scripts/soak; needs ROOT. Builds .cache/venv, the project's virtualenv
# with every pinned package, and rebuilds it only when the pins change.
VENV=$ROOT/.cache/venv

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
