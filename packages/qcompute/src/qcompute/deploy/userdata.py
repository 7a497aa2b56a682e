"""What runs on the instance, rendered from Python so nothing but code travels with the package.

- The release script fetches the bundle from the stack's bucket and the SECRET_KEY from SSM, writes
  a root-only env file and runs `docker compose up -d --build`. It runs at first boot and again, via
  SSM Run Command, whenever `deploy up` rolls out a new bundle or worker count.
- The user data (first boot only) installs Docker, the pinned Compose and Buildx plugins, writes the
  release script and runs it.

No secret appears in either: the instance reads it at run time with its own role.
"""

from __future__ import annotations

import shlex

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
# Long enough for three image builds on a t3.micro (the first one pulls the Python base image).
COMPOSE_WAIT_SECONDS = 900
SWAP_MEBIBYTES = 2048


def release_script(names: StackNames) -> str:
    q = shlex.quote
    return f"""#!/bin/bash
# Fetch the application bundle of stack {names.stack} and (re)start it with Docker Compose.
# Usage: {RELEASE_SCRIPT} WORKERS   (written by the user data; rewritten at each rollout)
set -euo pipefail
workers=${{1:?usage: release.sh WORKERS}}
# Neither cloud-init nor Run Command sets HOME; the docker and aws commands want one.
export HOME=${{HOME:-/root}} AWS_REGION={q(names.region)}
app={APP_DIR}
# One release at a time: a rollout may arrive while the first boot's release still runs.
exec 9>"$app/release.lock"
flock 9
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "release: fetching s3://{names.log_bucket}/{names.bundle_key}"
aws s3 cp --only-show-errors {q(f"s3://{names.log_bucket}/{names.bundle_key}")} "$work/bundle.tar.gz"
# Directories must stay readable: the images copy them for an unprivileged user.
(umask 022 && mkdir "$work/release" && tar -xzf "$work/bundle.tar.gz" --no-same-owner -C "$work/release")

# The secret goes from SSM into a file only root can read: never into user data, the bundle or argv.
secret=$(aws ssm get-parameter --name {q(names.secret_key_parameter)} --with-decryption \\
  --query Parameter.Value --output text)
(umask 077 && printf 'STACK_NAME=%s\\nAWS_REGION=%s\\nSECRET_KEY=%s\\n' \\
  {q(names.stack)} "$AWS_REGION" "$secret" > "$app/stack.env")

rm -rf "$app/release.old"
if [ -d "$app/release" ]; then mv "$app/release" "$app/release.old"; fi
mv "$work/release" "$app/release"
cd "$app/release"
echo "release: docker compose up with $workers worker(s)"
docker compose --env-file "$app/stack.env" -f compose.yaml up -d --build --remove-orphans \\
  --scale worker="$workers" --wait --wait-timeout {COMPOSE_WAIT_SECONDS}
rm -rf "$app/release.old"
# Images of earlier releases would fill the small root volume over time.
docker image prune -f
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
        f"cat > {RELEASE_SCRIPT} <<'RELEASE'\n{release_script(names)}RELEASE\n"
        f"chmod 700 {RELEASE_SCRIPT}\n"
    )


def user_data(names: StackNames, workers: int) -> str:
    return f"""#!/bin/bash
# First boot of the qcompute instance of stack {names.stack}; cloud-init runs this once, as root.
# Its output is in /var/log/cloud-init-output.log.
set -euo pipefail
export HOME=${{HOME:-/root}}

# A t3.micro has 1 GiB of memory: swap keeps the image builds from being killed.
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

{write_release_script(names)}{RELEASE_SCRIPT} {int(workers)}
"""


def rollout_commands(names: StackNames, workers: int) -> list[str]:
    """The AWS-RunShellScript commands of a rollout: refresh the release script, then run it."""
    return ["set -eu", write_release_script(names), f"{RELEASE_SCRIPT} {int(workers)}"]
