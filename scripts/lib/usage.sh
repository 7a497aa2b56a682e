# shellcheck shell=bash
# Sourced by the scripts a user runs; needs nothing installed. A script's usage is its header comment:
# the lines after `#!` up to its first line of code, shown without their "# ".

usage() {
  awk 'NR == 1 { next } !/^#/ { exit } { sub(/^# ?/, ""); print }' "$0"
}

# usage_error MESSAGE: say what is wrong and where the usage is, and exit 2.
usage_error() {
  echo "scripts/${0##*/}: $* (see scripts/${0##*/} --help)" >&2
  exit 2
}
