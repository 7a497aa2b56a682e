"""Deploy the stack to one EC2 instance, show it, remove it.

    scripts/deploy up     [--stack NAME] [--region R] [--instance-type T] [--http-cidr CIDR]
                          [--workers N] [--access open|accounts] [--domain NAME | --no-domain]
                          [--email ADDR | --no-email] [--log-retention-days N]
                          [--alert-email ADDR | --no-alert-email] [--alert-oldest-seconds S]
                          [--worker-hosts MIN..MAX | --no-worker-hosts] [--worker-instance-type T]
                          [--spot | --no-spot] [--worker-latency-seconds S] [--worker-idle-minutes N]
                          [--no-wait] [--source DIR]
    scripts/deploy plan   (the options of up, without --no-wait): what up would do; changes nothing
    scripts/deploy status [--stack NAME] [--region R]
    scripts/deploy rollback [--stack NAME] [--region R]
    scripts/deploy logs   [--service frontend|worker|logger|proxy] [--since 10m] [--follow]
                          [--request ID] [--json]
    scripts/deploy down   [--stack NAME] [--region R] [--yes]

The stack and region default to $STACK_NAME and $AWS_REGION. AWS calls use the credentials of the
person deploying (whatever the AWS CLI would use); none of them ever reaches the instance.
AWS_ENDPOINT_URL points every call at an emulator instead. An option of up left out keeps what the
stack has (or the default). With --domain, up prints the DNS record to create and waits until
https://NAME/ answers with a certificate this machine trusts: up to 10 minutes after a rollout, 30
after a first boot. If it does not, up exits 1 saying what to check; the stack is deployed all the
same, and running up again only waits again. On the instance the containers log to CloudWatch Logs,
one group per service; `logs` prints those lines, newest last (--request: one request's lines in the
frontend, worker and logger). With --alert-email, CloudWatch alarms e-mail ADDR (through the SNS
topic <stack>-alerts, once ADDR confirms) when a dead-letter queue holds a message, a request waits
longer than --alert-oldest-seconds, replies stall (a frontend logs replies_stalled), or the instance
fails its status check. With --worker-hosts MIN..MAX, an Auto Scaling group of worker-only hosts
follows the requests queue between MIN and MAX hosts (README, "Worker fleet").

A rollout (up after a change) starts the new release beside the old one and stops the old one only once
every new container is healthy: no request fails. A release that is not healthy is refused (up exits 1
saying why) and the old one keeps serving. `rollback` returns to the release before the last rollout
with the images the instance kept, without building: in about half a minute.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from qcompute.deploy import alerts, fleet, instance, loggroups, logview, stack, userdata
from qcompute.deploy.bundle import find_source
from qcompute.deploy.session import DeployError, Deployment, connect, explain, uses_emulator
from qcompute.deploy.waiting import (
    BOOT_SECONDS,
    CERTIFICATE_SECONDS,
    say,
    wait_for_certificate,
    wait_for_http,
)
from qcompute.names import LOGGED_SERVICES
from qcompute.provision import QUEUE_RETENTION_SECONDS, Change
from qcompute.settings import ConfigError, StackSettings

INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
MAX_WORKERS = 10
# A request older than the queue keeps messages is gone: no age beyond that can be reached.
MAX_OLDEST_SECONDS = QUEUE_RETENTION_SECONDS


def _workers(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_WORKERS}")
    return int(value)


def _instance_type(value: str) -> str:
    if not INSTANCE_TYPE.match(value):
        raise argparse.ArgumentTypeError("must look like t3.micro")
    return value


def _domain(value: str) -> str:
    try:
        return userdata.check_domain(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _email(value: str) -> str:
    try:
        return userdata.check_email(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _seconds(value: str) -> int:
    if not value.isdigit() or not 60 <= int(value) <= MAX_OLDEST_SECONDS:
        raise argparse.ArgumentTypeError(f"must be a whole number of seconds from 60 to {MAX_OLDEST_SECONDS}")
    return int(value)


def _duration(value: str) -> int:
    try:
        return logview.parse_duration(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _request_id(value: str) -> str:
    try:
        return logview.check_request_id(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _retention(value: str) -> int:
    if not value.isdigit() or int(value) not in loggroups.RETENTION_DAYS:
        allowed = ", ".join(map(str, loggroups.RETENTION_DAYS))
        raise argparse.ArgumentTypeError(f"CloudWatch Logs keeps logs for one of {allowed} days")
    return int(value)


def _worker_hosts(value: str) -> tuple[int, int]:
    try:
        return fleet.parse_hosts(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _whole(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        if not value.isdigit() or not low <= int(value) <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}")
        return int(value)

    return parse


def _fleet_options(shape: argparse.ArgumentParser) -> None:
    hosts = shape.add_mutually_exclusive_group()
    hosts.add_argument(
        "--worker-hosts",
        type=_worker_hosts,
        metavar="MIN..MAX",
        help="an Auto Scaling group of worker-only hosts beside the web host, MIN to MAX of them "
        "(default: the stack's, or none)",
    )
    hosts.add_argument(
        "--no-worker-hosts", dest="worker_hosts", action="store_const", const=(), help="remove the fleet"
    )
    shape.add_argument(
        "--worker-instance-type",
        type=_instance_type,
        metavar="T",
        help="the worker hosts' type, one worker per vCPU "
        f"(default: the fleet's, or {fleet.DEFAULT_INSTANCE_TYPE})",
    )
    spot = shape.add_mutually_exclusive_group()
    spot.add_argument("--spot", dest="spot", action="store_const", const=True, help="worker hosts on Spot")
    spot.add_argument("--no-spot", dest="spot", action="store_const", const=False, help="on-demand (default)")
    shape.add_argument(
        "--worker-latency-seconds",
        type=_whole(1, 3600),
        metavar="S",
        help="how long a request may wait: sets the backlog per host the fleet scales to "
        f"(default: the fleet's, or {fleet.DEFAULT_LATENCY_SECONDS})",
    )
    shape.add_argument(
        "--worker-idle-minutes",
        type=_whole(1, fleet.MAX_IDLE_MINUTES),
        metavar="N",
        help="back to MIN hosts once the queue has been empty this long "
        f"(default: the fleet's, or {fleet.DEFAULT_IDLE_MINUTES})",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/deploy",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="{up,plan,status,rollback,logs,down}"
    )
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--stack", help="stack name (default: $STACK_NAME)")
    where.add_argument("--region", help="AWS region (default: $AWS_REGION)")
    shape = argparse.ArgumentParser(add_help=False)
    shape.add_argument(
        "--instance-type",
        type=_instance_type,
        help=f"EC2 instance type (default: the stack's, or {instance.DEFAULT_INSTANCE_TYPE})",
    )
    shape.add_argument(
        "--http-cidr",
        help=f"who may reach the web ports (default: the stack's, or {stack.DEFAULT_HTTP_CIDR})",
    )
    shape.add_argument(
        "--workers",
        type=_workers,
        help=f"worker containers (default: the stack's, or {instance.DEFAULT_WORKERS})",
    )
    shape.add_argument(
        "--access",
        choices=userdata.ACCESS_MODES,
        help=f"who may use the service (default: the stack's, or {userdata.DEFAULT_ACCESS})",
    )
    domain = shape.add_mutually_exclusive_group()
    domain.add_argument(
        "--domain",
        type=_domain,
        help="serve HTTPS at this DNS name (a proxy gets a certificate; opens port 443) "
        "(default: the stack's, or none: plain HTTP)",
    )
    domain.add_argument(
        "--no-domain", dest="domain", action="store_const", const="", help="drop the domain: plain HTTP"
    )
    email = shape.add_mutually_exclusive_group()
    email.add_argument(
        "--email",
        type=_email,
        help="the certificate authority's contact for the domain (default: the stack's)",
    )
    email.add_argument("--no-email", dest="email", action="store_const", const="", help="no ACME contact")
    shape.add_argument(
        "--log-retention-days",
        type=_retention,
        metavar="N",
        help="how long CloudWatch Logs keeps the containers' logs "
        f"(default: the stack's, or {loggroups.DEFAULT_RETENTION_DAYS})",
    )
    alert = shape.add_mutually_exclusive_group()
    alert.add_argument(
        "--alert-email",
        type=_email,
        metavar="ADDR",
        help="e-mail ADDR when an alarm goes off (SNS asks ADDR to confirm first) (default: the stack's)",
    )
    alert.add_argument(
        "--no-alert-email",
        dest="alert_email",
        action="store_const",
        const="",
        help="remove the alarms, their topic and its subscription",
    )
    shape.add_argument(
        "--alert-oldest-seconds",
        type=_seconds,
        metavar="S",
        help="alarm when a request has waited longer than S seconds "
        f"(default: the stack's, or {alerts.DEFAULT_OLDEST_SECONDS})",
    )
    _fleet_options(shape)
    shape.add_argument("--source", type=Path, help="the repository to deploy (default: the one run from)")
    up = commands.add_parser("up", parents=[where, shape], help="create or update the stack and start it")
    up.add_argument(
        "--no-wait", action="store_true", help="do not wait for the page (or its certificate) to answer"
    )
    commands.add_parser("plan", parents=[where, shape], help="show what up would do; change nothing")
    commands.add_parser("status", parents=[where], help="the stack's resources, instance, URL, queues")
    commands.add_parser(
        "rollback", parents=[where], help="return to the release before the last rollout (no build)"
    )
    logs = commands.add_parser("logs", parents=[where], help="the containers' log lines, newest last")
    logs.add_argument(
        "--service",
        choices=LOGGED_SERVICES,
        action="append",
        help="only this service's lines (repeatable; default: all, or the three a request visits)",
    )
    logs.add_argument(
        "--since", type=_duration, default="10m", help="how far back: 30s, 10m, 2h, 1d (default 10m)"
    )
    logs.add_argument("--follow", action="store_true", help="keep printing new lines until Ctrl-C")
    logs.add_argument("--request", type=_request_id, metavar="ID", help="only the lines of this request")
    logs.add_argument("--json", action="store_true", help="the lines as the services wrote them")
    down = commands.add_parser("down", parents=[where], help="remove every resource of the stack")
    down.add_argument("--yes", action="store_true", help="remove without asking")
    return parser


def _print_change(change: Change) -> None:
    detail = f" ({change.detail})" if change.detail else ""
    say(f"  {change.action:<6} {change.resource:<14} {change.name}{detail}")


def _where() -> str:
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    return f"the emulator at {endpoint}" if endpoint else "AWS"


def _header(command: str, deployment: Deployment) -> None:
    names = deployment.names
    say(f"{command} stack {names.stack!r} in {names.region}, account {names.account_id}, on {_where()}")


def _up(args: argparse.Namespace, stack_name: str, region: str) -> int:
    dry_run = args.command == "plan"
    source = args.source.resolve() if args.source else find_source()
    deployment = connect(stack_name, region)
    _header(args.command, deployment)
    wanted = stack.Wanted(
        args.instance_type,
        args.http_cidr,
        args.workers,
        args.access,
        args.domain,
        args.email,
        log_retention_days=args.log_retention_days,
        alert_email=args.alert_email,
        alert_oldest_seconds=args.alert_oldest_seconds,
        fleet=fleet.FleetWanted(
            hosts=args.worker_hosts,
            instance_type=args.worker_instance_type,
            spot=args.spot,
            latency_seconds=args.worker_latency_seconds,
            idle_minutes=args.worker_idle_minutes,
        ),
    )
    outcome = stack.up(deployment, wanted, source, dry_run=dry_run, report=_print_change)
    release = outcome.spec.release
    if release.domain and outcome.http_cidr != stack.DEFAULT_HTTP_CIDR:
        say(
            f"warning: --http-cidr {outcome.http_cidr} keeps the certificate authority out: it validates "
            f"{release.domain} from the internet on ports 80 and 443, so no certificate can be issued. "
            f"Use --http-cidr {stack.DEFAULT_HTTP_CIDR} (accounts keep strangers out) or --no-domain"
        )
    if dry_run:
        changes = outcome.changes
        actions = ("create", "update", "delete", "ok")
        counts = {action: sum(c.action == action for c in changes) for action in actions}
        removed = f", {counts['delete']} to delete" if counts["delete"] else ""
        say(
            f"plan: {counts['create']} to create, {counts['update']} to update{removed}, "
            f"{counts['ok']} as defined"
        )
        return 0
    found = instance.the_instance(deployment)
    if found is None:
        raise DeployError("the instance disappeared while deploying: run `scripts/deploy up` again")
    running = instance.wait_running(deployment, found["InstanceId"])
    url = instance.public_url(running)
    if url is None:
        raise DeployError(
            f"instance {running['InstanceId']} has no public address: its default subnet assigns none; "
            "turn on auto-assign public IPv4 for the default subnets, then `down` and `up`"
        )
    address = running["PublicIpAddress"]
    if release.domain:
        url = f"https://{release.domain}/"
        say(f"DNS: {release.domain} must point at the instance; create (or update) this record:")
        say(f"  {release.domain}  A  {address}")
    if args.no_wait:
        say(f"not waiting for {url} (--no-wait)")
    elif uses_emulator():
        # An emulator hands out made-up public addresses that belong to someone else.
        say(f"not waiting for {url}: the emulator's address is not a real instance")
    elif release.domain:
        # A new instance first boots (Docker, three image builds); a rollout has already waited.
        timeout = CERTIFICATE_SECONDS + (BOOT_SECONDS if outcome.launched else 0)
        wait_for_certificate(release.domain, address, timeout=timeout)
    else:
        wait_for_http(f"{url}readyz")
    _access_notes(deployment, release, stack_name, region)
    if not release.domain:
        say(
            f"note: traffic to {url} is not encrypted: passwords, tokens and numbers cross the network "
            f"in clear. For HTTPS, point a DNS name at {address} and run `scripts/deploy up --domain NAME`"
        )
    say(f"URL: {url}")
    return 0


def _access_notes(deployment: Deployment, release: userdata.Release, stack_name: str, region: str) -> None:
    if release.access == "open":
        say(
            "access: open: anyone who reaches the page may submit work and read every result; "
            "`scripts/deploy up --access accounts` requires signing in"
        )
        return
    count, admins, _ = stack.accounts_summary(deployment)
    if admins:
        say(f"access: accounts ({count} account(s), {admins} admin(s); manage them with scripts/users)")
        return
    # Never made here: up's output often ends up in CI logs, and a password must not.
    nobody = "no account yet" if not count else f"{count} account(s) but no admin"
    say(
        f"access: accounts, {nobody}: create the first admin with "
        f"`scripts/users add NAME --admin --stack {stack_name} --region {region}` "
        "(it prints the password once)"
    )


def _status(stack_name: str, region: str) -> int:
    deployment = connect(stack_name, region)
    _header("status", deployment)
    rows = stack.status(deployment)
    widths = [max(len(row[column]) for row in rows) for column in (0, 1)]
    for resource, name, state in rows:
        say(f"  {resource:<{widths[0]}}  {name:<{widths[1]}}  {state}")
    return 0


def _rollback(stack_name: str, region: str) -> int:
    deployment = connect(stack_name, region)
    _header("rollback", deployment)
    began = time.monotonic()
    undone, restored = instance.rollback(deployment)
    took = time.monotonic() - began
    say(
        f"rolled back from bundle {undone[:12] or '?'} to {restored[:12]} in {took:.0f} s; "
        "`scripts/deploy rollback` again returns to the one rolled back from, `up` rolls out your code"
    )
    return 0


def _logs(args: argparse.Namespace, stack_name: str, region: str) -> int:
    deployment = connect(stack_name, region)
    services = args.service or (logview.REQUEST_SERVICES if args.request else LOGGED_SERVICES)
    try:
        printed = logview.show(
            deployment,
            services=dict.fromkeys(services),
            since_seconds=args.since,
            request_id=args.request,
            follow=args.follow,
            raw=args.json,
            write=lambda line: print(line, flush=True),
            note=lambda text: print(text, file=sys.stderr),
        )
    except KeyboardInterrupt:
        return 0  # how --follow ends
    if not printed:
        what = f"of request {args.request} " if args.request else ""
        print(f"no log lines {what}in the last {args.since} s", file=sys.stderr)
    return 0


def _down(args: argparse.Namespace, stack_name: str, region: str) -> int:
    deployment = connect(stack_name, region)
    if not args.yes:
        try:
            answer = input(
                f"Remove every resource of stack {stack_name!r} in {region} on {_where()}? "
                "Type the stack name: "
            )
        except EOFError:
            answer = ""
        if answer.strip() != stack_name:
            say("nothing removed")
            return 1
    _header("down", deployment)
    changes = stack.down(deployment, report=_print_change)
    if not changes:
        say("  nothing to do")
    say(f"stack {stack_name!r} is removed from {region}: nothing of it remains")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Provisioning logs each change; this command prints them itself.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        settings = StackSettings.from_options(args.stack, args.region)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        if args.command in {"up", "plan"}:
            return _up(args, settings.stack, settings.region)
        if args.command == "status":
            return _status(settings.stack, settings.region)
        if args.command == "rollback":
            return _rollback(settings.stack, settings.region)
        if args.command == "logs":
            return _logs(args, settings.stack, settings.region)
        return _down(args, settings.stack, settings.region)
    except (DeployError, BotoCoreError, ClientError) as error:
        print(f"error: {explain(error, settings.region)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: run the same command again to finish what it started", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
