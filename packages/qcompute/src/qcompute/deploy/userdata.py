"""What runs on the instance, rendered from Python so nothing but code travels with the package.

- The release script fetches the bundle from the stack's bucket and the SECRET_KEY from SSM, writes
  a root-only env file and rolls the stack over to the new release with the bundle's scripts/rollout
  (the new containers start beside the old ones, which stop only once every new one is healthy). It
  runs at first boot and again, via SSM Run Command, whenever `deploy up` rolls out a new bundle or
  new settings (`Release`: workers, access mode, domain, ACME e-mail), which it takes as options; and
  with --rollback (`deploy rollback`) it returns to the release before, whose images it kept.
- The user data (first boot only) installs Docker, the pinned Compose and Buildx plugins, writes the
  release script and runs it.

No secret appears in either, nor in a command's arguments: the instance reads the SECRET_KEY at run
time with its own role, and accounts live in SSM where the frontend reads them.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from qcompute.names import StackNames

RELEASE_SCRIPT = "/opt/qcompute/release.sh"
APP_DIR = "/opt/qcompute"
# Pinned plugin releases and their published SHA-256 (as pinned by Docker's official `docker` image).
# Compose 2.40 refuses a Buildx older than 0.17 (AL2023's may be), hence our own Buildx.
COMPOSE_VERSION = "v2.40.3"
BUILDX_VERSION = "v0.29.1"
PLUGINS = {
    # uname -m: (compose asset suffix, its sha256, buildx asset suffix, its sha256)
    "x86_64": (
        "x86_64",
        "dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372",
        "amd64",
        "7d2d7d6d4680aa349614965aaa33ccec43f1a9a21e908a5ce4cb6adfa5ad5141",
    ),
    "aarch64": (
        "aarch64",
        "d26373b19e89160546d15407516cc59f453030d9bc5b43ba7faf16f7b4980137",
        "arm64",
        "50e85c4e290b698908421161c1aee069bcc5d4a65b7b7201bfac3a176b223a7e",
    ),
}
# How long a new release's containers may take to become healthy before it is refused.
ROLLOUT_TIMEOUT_SECONDS = 300
SWAP_MEBIBYTES = 2048

ACCESS_MODES = ("open", "accounts")
DEFAULT_ACCESS = "accounts"
# The frontend's MAX_BACKLOG on the web host without a worker fleet (its own default).
DEFAULT_MAX_BACKLOG = 1000
MAX_BACKLOG_LIMIT = 999_999
# A DNS name: dot-separated labels of letters, digits and inner hyphens, a top-level label that is not
# all digits (so no IP address), at most 253 characters. Lowercase: DNS names are case-insensitive.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
DOMAIN = re.compile(rf"^(?=.{{1,253}}$)(?:{_LABEL}\.)+(?:[a-z]{{2,63}}|xn--[a-z0-9-]{{1,59}})$")
# What an ACME account's contact address needs, and nothing that an env file or a shell would read.
EMAIL = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@(?:[a-z0-9-]{1,63}\.)+[a-z0-9-]{2,63}$")


def check_domain(value: str) -> str:
    """The public DNS name, lowercased and without a trailing dot; raise ValueError if it is not one."""
    name = value.strip().lower().removesuffix(".")
    if "://" in name or "/" in name:
        raise ValueError(
            f"{value!r} is not a DNS name: give the name alone, without https:// or a path, e.g. "
            "qcompute.example.org"
        )
    if ":" in name:
        raise ValueError(f"{value!r} is not a DNS name: no port (HTTPS is served on 443)")
    if not DOMAIN.match(name):
        raise ValueError(
            f"{value!r} is not a DNS name: dot-separated labels of letters, digits and hyphens, "
            "e.g. qcompute.example.org (an IP address cannot get a certificate here)"
        )
    return name


def check_email(value: str) -> str:
    address = value.strip()
    local, _, domain = address.rpartition("@")
    if len(address) > 254 or not EMAIL.match(f"{local}@{domain.lower()}"):
        raise ValueError(f"{value!r} is not an e-mail address the certificate authority would take")
    return f"{local}@{domain.lower()}"


@dataclass(frozen=True)
class Release:
    """What the release script is told at each run, as its options; none of it is secret."""

    workers: int
    access: str = DEFAULT_ACCESS
    domain: str = ""  # empty: the proxy serves plain HTTP on port 80
    email: str = ""  # the ACME account's contact; only with a domain
    # Requests waiting above which the frontend refuses more: a worker fleet raises it (fleet.py).
    max_backlog: int = DEFAULT_MAX_BACKLOG

    def __post_init__(self) -> None:
        # Checked again here (and in the script): the values travel into a shell and an env file.
        if self.access not in ACCESS_MODES:
            raise ValueError(f"access mode must be one of {', '.join(ACCESS_MODES)}, not {self.access!r}")
        if self.domain:
            check_domain(self.domain)
        if self.email:
            check_email(self.email)
        if self.email and not self.domain:
            raise ValueError("an ACME e-mail address needs a domain")
        if not 1 <= self.max_backlog <= MAX_BACKLOG_LIMIT:
            raise ValueError(f"the backlog limit must be 1 to {MAX_BACKLOG_LIMIT}, not {self.max_backlog}")

    def arguments(self) -> str:
        """The release script's options, quoted for a shell."""
        options = ["--workers", str(int(self.workers)), "--access", self.access]
        if self.max_backlog != DEFAULT_MAX_BACKLOG:
            options += ["--max-backlog", str(int(self.max_backlog))]
        if self.domain:
            options += ["--domain", self.domain]
        if self.email:
            options += ["--email", self.email]
        return shlex.join(options)


def release_script(names: StackNames, app_dir: str = APP_DIR) -> str:
    q = shlex.quote
    return f"""#!/bin/bash
# Fetch the application bundle of stack {names.stack} and roll the instance over to it without a failed
# request (scripts/rollout in the bundle); or, with --rollback, return to the release before it.
# Usage: {RELEASE_SCRIPT} --workers N --access open|accounts [--max-backlog N] [--domain NAME [--email ADDR]]
#        {RELEASE_SCRIPT} --rollback
# (written by the user data; rewritten at each rollout). No secret is passed in: it is read here.
# {app_dir}/release holds the release that serves, with its settings in stack.env (root only);
# {app_dir}/release.previous the one before, whose images are kept for a rollback without a build.
set -euo pipefail
usage() {{
  echo "usage: release.sh --workers N --access open|accounts [--max-backlog N]" \\
    "[--domain NAME [--email ADDR]] | --rollback" >&2
  exit 2
}}
workers='' access='' domain='' email='' rollback='' backlog={DEFAULT_MAX_BACKLOG}
while [ $# -gt 0 ]; do
  if [ "$1" = --rollback ]; then rollback=1; shift; continue; fi
  [ $# -ge 2 ] || usage
  case "$1" in
    --workers) workers=$2 ;;
    --access) access=$2 ;;
    --max-backlog) backlog=$2 ;;
    --domain) domain=$2 ;;
    --email) email=$2 ;;
    *) usage ;;
  esac
  shift 2
done
if [ -z "$rollback" ]; then
  # The values go into an env file: only what a worker count, a DNS name or an address may hold.
  [[ $workers =~ ^[1-9][0-9]?$ ]] || usage
  [[ $access =~ ^(open|accounts)$ ]] || usage
  [[ $backlog =~ ^[1-9][0-9]{{0,5}}$ ]] || usage
  [[ -z $domain || $domain =~ ^[a-z0-9][a-z0-9.-]*$ ]] || usage
  [[ -z $email || ( -n $domain && $email =~ ^[A-Za-z0-9._%+-]+@[a-z0-9.-]+$ ) ]] || usage
fi
# Neither cloud-init nor Run Command sets HOME; the docker and aws commands want one.
export HOME=${{HOME:-/root}} AWS_REGION={q(names.region)}
app={q(app_dir)}
# One release at a time: a rollout may arrive while the first boot's release still runs.
exec 9>"$app/release.lock"
flock 9
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A run cut off in the middle (an instance stop, a Run Command timeout) left the release that served
# beside the one it tried: put the directories back as they were before it; the next rollout brings
# the containers in line.
if [ -d "$app/release.served" ]; then
  echo "release: an earlier rollout did not finish; the release that served before it is restored"
  rm -rf "$app/release"
  mv "$app/release.served" "$app/release"
fi
if [ -d "$app/release.undone" ]; then
  echo "release: an earlier rollback did not finish; the release it rolled back from is restored"
  if [ -d "$app/release" ]; then rm -rf "$app/release.previous"; mv "$app/release" "$app/release.previous"; fi
  mv "$app/release.undone" "$app/release"
fi

# The proxy's files of the release in $app/release go to $app/proxy, a directory that is never renamed
# or replaced (only its files are rewritten): Docker holds on to the directory a running container
# mounted, whatever its path names later.
proxy_files() {{
  mkdir -p "$app/proxy"
  cp -f "$app/release/services/proxy/"* "$app/proxy/"
}}
# Run the release in $app/release with its own settings. $1: --no-build, if given.
roll() {{
  proxy_files
  cd "$app/release"
  local tag workers_of
  tag=$(sed -n 's/^IMAGE_TAG=//p' stack.env)
  workers_of=$(sed -n 's/^WORKERS=//p' stack.env)
  echo "release: rolling out $tag with $workers_of worker(s)"
  # compose.aws.yaml: the containers' output goes to the stack's CloudWatch Logs groups.
  ./scripts/rollout ${{1:+"$1"}} --workers "$workers_of" --timeout {ROLLOUT_TIMEOUT_SECONDS} -- \\
    --env-file stack.env -f compose.yaml -f compose.aws.yaml
}}
# Images of releases other than these two would fill the small root volume over time.
prune() {{
  local keep
  keep=' '
  for kept in "$app/release" "$app/release.previous"; do
    if [ -f "$kept/stack.env" ]; then keep+="$(sed -n 's/^IMAGE_TAG=//p' "$kept/stack.env") "; fi
  done
  docker images --filter 'reference=qcompute-*' --format '{{{{.Repository}}}} {{{{.Tag}}}}' |
    while read -r repository tag; do
      case "$keep" in *" $tag "*) ;; *) docker rmi "$repository:$tag" >/dev/null || true ;; esac
    done
  docker image prune -f >/dev/null
}}

if [ -n "$rollback" ]; then
  if [ ! -f "$app/release.previous/stack.env" ]; then
    echo "release: refused: there is no previous release on this instance to return to" >&2
    exit 1
  fi
  rm -rf "$app/release.undone"
  mv "$app/release" "$app/release.undone"
  mv "$app/release.previous" "$app/release"
  if ! roll --no-build; then
    mv "$app/release" "$app/release.previous"
    mv "$app/release.undone" "$app/release"
    proxy_files
    echo "release: the rollback failed; the release that served still serves" >&2
    exit 1
  fi
  # The release rolled back from becomes the previous one: a second rollback returns to it.
  mv "$app/release.undone" "$app/release.previous"
  echo "release: rolled back to $(sed -n 's/^IMAGE_TAG=//p' "$app/release/stack.env")"
  exit 0
fi

echo "release: fetching s3://{names.log_bucket}/{names.bundle_key}"
aws s3 cp --only-show-errors {q(f"s3://{names.log_bucket}/{names.bundle_key}")} "$work/bundle.tar.gz"
# Directories must stay readable: the images copy them for an unprivileged user.
(umask 022 && mkdir "$work/release" && tar -xzf "$work/bundle.tar.gz" --no-same-owner -C "$work/release")
# The images' tag: the bundle's digest as `scripts/deploy status` shows it (of the uncompressed tar).
tag=$(gzip -dc "$work/bundle.tar.gz" | sha256sum | cut -c1-12)

# The secret goes from SSM into a file only root can read: never into user data, the bundle or argv.
secret=$(aws ssm get-parameter --name {q(names.secret_key_parameter)} --with-decryption \\
  --query Parameter.Value --output text)
(
  umask 077
  {{
    printf 'STACK_NAME=%s\\nAWS_REGION=%s\\nSECRET_KEY=%s\\n' {q(names.stack)} "$AWS_REGION" "$secret"
    printf 'ACCESS_MODE=%s\\nDOMAIN=%s\\nACME_EMAIL=%s\\n' "$access" "$domain" "$email"
    printf 'IMAGE_TAG=%s\\nWORKERS=%s\\nPROXY_CONFIG_DIR=%s\\n' "$tag" "$workers" "$app/proxy"
    printf 'MAX_BACKLOG=%s\\n' "$backlog"
  }} > "$work/release/stack.env"
)

# The new release takes the fixed path; the one that served waits beside it until the rollout ends.
rm -rf "$app/release.next" "$app/release.served"
mv "$work/release" "$app/release.next"
[ -d "$app/release" ] && mv "$app/release" "$app/release.served"
mv "$app/release.next" "$app/release"
if ! roll; then
  rm -rf "$app/release"
  if [ -d "$app/release.served" ]; then
    mv "$app/release.served" "$app/release"
    proxy_files
  fi
  echo "release: refused $tag; the release that served still serves" >&2
  exit 1
fi
# The one that served becomes the previous release; not if it was this very release again (an `up`
# repeated after its wait was cut short), or a rollback would have nowhere different to go.
if [ -d "$app/release.served" ]; then
  if cmp -s "$app/release/stack.env" "$app/release.served/stack.env"; then
    rm -rf "$app/release.served"
  else
    rm -rf "$app/release.previous"
    mv "$app/release.served" "$app/release.previous"
  fi
fi
prune
echo "release: done"
"""


def _plugin_cases() -> str:
    cases = []
    for machine, (compose_arch, compose_sha, buildx_arch, buildx_sha) in PLUGINS.items():
        cases.append(
            f"  {machine})\n"
            f"    compose_url=https://github.com/docker/compose/releases/download/{COMPOSE_VERSION}/"
            f"docker-compose-linux-{compose_arch}\n"
            f"    compose_sha={compose_sha}\n"
            f"    buildx_url=https://github.com/docker/buildx/releases/download/{BUILDX_VERSION}/"
            f"buildx-{BUILDX_VERSION}.linux-{buildx_arch}\n"
            f"    buildx_sha={buildx_sha}\n"
            "    ;;"
        )
    return "\n".join(cases)


def write_release_script(names: StackNames) -> str:
    """Shell lines that (re)write the release script; the quoted heredoc keeps it verbatim."""
    return (
        f"mkdir -p {APP_DIR}\n"
        # A new file moved into place: a run still reading the old one keeps reading the old one.
        f"cat > {RELEASE_SCRIPT}.new <<'RELEASE'\n{release_script(names)}RELEASE\n"
        f"chmod 700 {RELEASE_SCRIPT}.new\n"
        f"mv -f {RELEASE_SCRIPT}.new {RELEASE_SCRIPT}\n"
    )


def host_setup() -> str:
    """Shell lines every host runs at first boot: swap, Docker, and the pinned Compose and Buildx."""
    return f"""# A t3.micro has 1 GiB of memory: swap keeps the image builds from being killed.
if [ ! -f /swapfile ]; then
  dd if=/dev/zero of=/swapfile bs=1M count={SWAP_MEBIBYTES} status=none
  chmod 600 /swapfile
  mkswap /swapfile
  swapon /swapfile
  echo '/swapfile none swap defaults 0 0' >> /etc/fstab
fi

dnf install -y docker
systemctl enable --now docker

# Compose and Buildx plugins: pinned releases, checked against their SHA-256 before use.
case "$(uname -m)" in
{_plugin_cases()}
  *) echo "unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac
plugins=/usr/local/lib/docker/cli-plugins
mkdir -p "$plugins"
install_plugin() {{
  curl -fsSL --retry 5 -o "$plugins/docker-$1" "$2"
  echo "$3  $plugins/docker-$1" | sha256sum -c -
  chmod 755 "$plugins/docker-$1"
}}
install_plugin compose "$compose_url" "$compose_sha"
install_plugin buildx "$buildx_url" "$buildx_sha"
docker compose version
"""


def user_data(names: StackNames, release: Release) -> str:
    return f"""#!/bin/bash
# First boot of the qcompute instance of stack {names.stack}; cloud-init runs this once, as root.
# Its output is in /var/log/cloud-init-output.log.
set -euo pipefail
export HOME=${{HOME:-/root}}

{host_setup()}
{write_release_script(names)}{RELEASE_SCRIPT} {release.arguments()}
"""


def rollout_commands(names: StackNames, release: Release) -> list[str]:
    """The AWS-RunShellScript commands of a rollout: refresh the release script, then run it."""
    return ["set -eu", write_release_script(names), f"{RELEASE_SCRIPT} {release.arguments()}"]
