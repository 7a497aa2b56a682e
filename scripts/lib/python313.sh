# shellcheck shell=bash
# Sourced by scripts/test and tests/compose/prepare.
# LocalStack 4.14.0 needs Python 3.13 (it uses 3.12/3.13 syntax), and the offline images run Debian
# trixie's Python 3.13, so their wheels are built with a 3.13 too.
find_python313() {
  local candidate version
  for candidate in "${LOCALSTACK_PYTHON:-}" python3.13; do
    if [ -n "$candidate" ] && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  if command -v pyenv >/dev/null; then
    version=$(pyenv versions --bare | grep -E '^3\.13(\.[0-9]+)?$' | tail -n 1 || true)
    if [ -n "$version" ]; then echo "$(pyenv root)/versions/$version/bin/python3.13"; return 0; fi
  fi
  echo "Python 3.13 is needed: install it (e.g. pyenv install 3.13) or set LOCALSTACK_PYTHON" >&2
  return 1
}
