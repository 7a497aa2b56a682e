"""The work behind the commands: what `up` (and `plan`) make exist, what `status` shows, what `down`
removes. `up` and `plan` run the same code; `plan` passes dry_run and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from qcompute import aws
from qcompute.accounts import AccountStore
from qcompute.deploy import alerts, bundle, fleet, infra, instance, loggroups, network, userdata
from qcompute.deploy.instance import InstanceSpec
from qcompute.deploy.session import DeployError, Deployment
from qcompute.deploy.waiting import wait_for
from qcompute.names import STACK_TAG
from qcompute.provision import Change, provision, remove, reply_queues

Report = Callable[[Change], None]
DEFAULT_HTTP_CIDR = "0.0.0.0/0"


@dataclass(frozen=True)
class Wanted:
    """What the person deploying asked for; None keeps what the stack has (or the default).
    An empty domain or e-mail asks for none (--no-domain, --no-email, --no-alert-email)."""

    instance_type: str | None = None
    http_cidr: str | None = None
    workers: int | None = None
    access: str | None = None
    domain: str | None = None
    email: str | None = None
    log_retention_days: int | None = None
    alert_email: str | None = None
    alert_oldest_seconds: int | None = None
    fleet: fleet.FleetWanted = field(default_factory=fleet.FleetWanted)


@dataclass(frozen=True)
class Outcome:
    """What `up` (or `plan`) did or would do, and the definition it worked to."""

    changes: list[Change]
    spec: InstanceSpec
    http_cidr: str

    @property
    def launched(self) -> bool:
        """Whether the instance is new (its first boot is still to come)."""
        return any(change.resource == "instance" and change.action == "create" for change in self.changes)


def _release(wanted: Wanted, current: dict[str, Any] | None, max_backlog: int) -> userdata.Release:
    """The release settings: what was asked for, else what the instance was last given, else defaults;
    the backlog limit follows the worker fleet (fleet.backlog_limit)."""
    recorded = instance.release_tags(current)
    workers = recorded.get(instance.WORKERS_TAG, "")
    domain = wanted.domain if wanted.domain is not None else recorded.get(instance.DOMAIN_TAG, "")
    if wanted.email and not domain:
        raise DeployError(
            "--email is the contact for the certificate of --domain: give --domain NAME too "
            "(or leave out --email)"
        )
    # Dropping the domain drops its ACME e-mail; a new domain keeps the one recorded, if any.
    email = wanted.email if wanted.email is not None else recorded.get(instance.EMAIL_TAG, "")
    try:
        return userdata.Release(
            workers=wanted.workers or (int(workers) if workers.isdigit() else instance.DEFAULT_WORKERS),
            access=wanted.access or recorded.get(instance.ACCESS_TAG) or userdata.DEFAULT_ACCESS,
            domain=domain,
            email=email if domain else "",
            max_backlog=max_backlog,
        )
    except ValueError as error:
        # Only a tag edited by hand gets here: the options were checked when they were parsed.
        raise DeployError(
            f"the instance's tags hold a setting that is not valid ({error}): pass --access, --domain "
            "or --no-domain, --email or --no-email explicitly"
        ) from None


def _check_names_free(deployment: Deployment, vpc_id: str) -> None:
    """Refuse to adopt a resource that has one of our names but not our stack tag."""
    names = deployment.names

    def foreign(tags: dict[str, str] | None) -> bool:
        return tags is not None and not infra.owned(deployment, tags)

    def tags_of(found: dict[str, Any] | None) -> dict[str, str] | None:
        return None if found is None else infra.tag_dict(found.get("Tags"))

    taken = [
        f"security group {names.security_group} ({group['GroupId']})"
        for group in network.find_security_groups(deployment, vpc_id)
        if foreign(tags_of(group))
    ]
    if foreign(tags_of(infra.find_role(deployment))):
        taken.append(f"IAM role {names.instance_role}")
    if foreign(tags_of(infra.find_profile(deployment))):
        taken.append(f"instance profile {names.instance_profile}")
    if foreign(infra.find_secret_tags(deployment)):
        taken.append(f"SSM parameter {names.secret_key_parameter}")
    if foreign(infra.bucket_tags(deployment)):
        taken.append(f"bucket {names.log_bucket}")
    taken += [f"log group {name}" for name in loggroups.foreign(deployment)]
    taken += alerts.foreign(deployment)
    taken += fleet.foreign(deployment, vpc_id)
    if taken:
        raise DeployError(
            f"names taken by resources not tagged {STACK_TAG}={names.stack}: {', '.join(taken)}; "
            "choose another --stack name (or delete those resources if they are yours to delete)"
        )


def up(deployment: Deployment, wanted: Wanted, source: Path, *, dry_run: bool, report: Report) -> Outcome:
    """Make the whole stack exist as defined; every check that can refuse runs before any change."""
    vpc_id = network.default_vpc(deployment)
    _check_names_free(deployment, vpc_id)
    current = instance.the_instance(deployment)
    groups = network.find_security_groups(deployment, vpc_id)
    if current and wanted.instance_type and wanted.instance_type != current["InstanceType"]:
        raise DeployError(
            f"instance {current['InstanceId']} is a {current['InstanceType']}, not a {wanted.instance_type}: "
            "a new type means a new instance and address; run `scripts/deploy down` first, or leave out "
            "--instance-type"
        )
    workers_fleet = fleet.settle(deployment, wanted.fleet)
    max_backlog = userdata.DEFAULT_MAX_BACKLOG
    if workers_fleet is not None:
        workers_per_host = fleet.check_memory(deployment, workers_fleet.instance_type)
        max_backlog = fleet.backlog_limit(workers_fleet, workers_per_host)
    app = bundle.build(source)
    spec = InstanceSpec(
        instance_type=wanted.instance_type
        or (current["InstanceType"] if current else instance.DEFAULT_INSTANCE_TYPE),
        bundle_digest=app.digest,
        release=_release(wanted, current, max_backlog),
    )
    instance.check_memory(deployment, spec)
    cidr = network.check_cidr(wanted.http_cidr) if wanted.http_cidr else None
    if cidr is None and groups:
        cidr = network.http_cidr(deployment, groups[0]["GroupId"])
    cidr = cidr or DEFAULT_HTTP_CIDR
    ports = network.web_ports(spec.release.domain)
    retention = (
        wanted.log_retention_days
        or loggroups.current_retention(deployment)
        or loggroups.DEFAULT_RETENTION_DAYS
    )
    alerting = alerts.settle(deployment, wanted.alert_email, wanted.alert_oldest_seconds)

    changes: list[Change] = []

    def record(*made: Change) -> None:
        for change in made:
            changes.append(change)
            report(change)

    # The shared provisioning code: queues, dead-letter queues, topic, subscription, bucket.
    record(*provision(deployment.clients, dry_run=dry_run))
    record(infra.ensure_secret(deployment, dry_run))
    record(*infra.ensure_role(deployment, dry_run))
    record(infra.ensure_profile(deployment, dry_run))
    # Before the instance: its containers' logging driver needs the groups and will not make them.
    record(*loggroups.ensure(deployment, retention, dry_run))
    group_change, group_id = network.ensure_security_group(deployment, vpc_id, cidr, ports, dry_run)
    record(group_change)
    record(bundle.ensure_uploaded(deployment, app, dry_run))
    record(instance.ensure_instance(deployment, spec, group_id, dry_run))
    # After the instance: its status alarm names it, and a replaced instance moves the alarm along.
    launched = instance.the_instance(deployment)
    record(*alerts.ensure(deployment, alerting, launched["InstanceId"] if launched else None, dry_run))
    # Last: its hosts fetch the bundle and log to the worker's group; nothing there without a fleet.
    record(*fleet.ensure(deployment, workers_fleet, vpc_id, dry_run))
    return Outcome(changes, spec, cidr)


def accounts_summary(deployment: Deployment) -> tuple[int, int, int]:
    """How many accounts the stack has, how many of them are admins, and how many parameters under
    its accounts path hold no valid account."""
    store = AccountStore(deployment.ssm, deployment.names)
    accounts = store.load()
    return len(accounts), sum(account.admin for account in accounts.values()), len(store.unreadable)


# --- status -----------------------------------------------------------------------------------------

Row = tuple[str, str, str]
_DEPTHS = {
    "visible": "ApproximateNumberOfMessages",
    "in flight": "ApproximateNumberOfMessagesNotVisible",
    "delayed": "ApproximateNumberOfMessagesDelayed",
}


def _depths(deployment: Deployment, queue: str) -> str:
    sqs = deployment.clients.sqs
    attributes = sqs.get_queue_attributes(
        QueueUrl=aws.queue_url(sqs, queue), AttributeNames=list(_DEPTHS.values())
    )["Attributes"]
    return ", ".join(f"{attributes.get(name, '0')} {label}" for label, name in _DEPTHS.items())


def status(deployment: Deployment) -> list[Row]:
    """One row per resource of the stack: present (with its state), drifted or missing."""
    names = deployment.names
    rows: list[Row] = []
    for change in provision(deployment.clients, dry_run=True):
        state = {"ok": "present", "create": "missing"}.get(change.action, f"drifted ({change.detail})")
        if change.resource == "queue" and change.action != "create":
            state = _depths(deployment, change.name)
        rows.append((change.resource, change.name, state))
    live = reply_queues(deployment.clients.sqs, names)
    rows.append(("reply queues", f"{names.reply_queue_prefix}*", f"{len(live)} live"))
    digest = bundle.uploaded_digest(deployment)
    rows.append(("bundle", names.bundle_key, digest[:12] if digest else "missing"))
    rows.append(("secret", names.secret_key_parameter, _present(infra.find_secret_tags(deployment))))
    rows.append(("role", names.instance_role, _present(infra.find_role(deployment))))
    rows.append(("profile", names.instance_profile, _present(infra.find_profile(deployment))))
    rows.extend(loggroups.status_rows(deployment))
    rows.extend(alerts.status_rows(deployment))
    groups = network.find_security_groups(deployment)
    for group in groups:
        rules = network.web_access(deployment, group["GroupId"]) or "inbound rules differ: run up"
        rows.append(("security group", f"{group['GroupName']} ({group['GroupId']})", rules))
    if not groups:
        rows.append(("security group", names.security_group, "missing"))
    instances = instance.stack_instances(deployment)
    for found in instances:
        rows.append(("instance", found["InstanceId"], instance.summary(found)))
        rows.extend(_release_rows(found))
    if not instances:
        rows.append(("instance", names.instance_name, "missing"))
    rows.extend(fleet.status_rows(deployment))
    count, admins, unreadable = accounts_summary(deployment)
    damaged = f"; {unreadable} unreadable (scripts/users list)" if unreadable else ""
    rows.append(("accounts", f"{names.accounts_path}/*", f"{count} account(s), {admins} admin(s){damaged}"))
    return rows


def _release_rows(found: dict[str, Any]) -> list[Row]:
    recorded = instance.release_tags(found)
    domain = recorded.get(instance.DOMAIN_TAG, "")
    email = recorded.get(instance.EMAIL_TAG, "")
    access = recorded.get(instance.ACCESS_TAG, "")
    address = instance.public_url(found)
    rows: list[Row] = []
    if domain:
        contact = f", ACME e-mail {email}" if email else ""
        rows.append(
            (
                "domain",
                domain,
                f"HTTPS through the proxy; DNS: {domain} A {found.get('PublicIpAddress', '?')}{contact}",
            )
        )
        rows.append(("url", "", f"https://{domain}/"))
    else:
        rows.append(("domain", "none", "plain HTTP, not encrypted (scripts/deploy up --domain NAME)"))
        rows.append(("url", "", address or "no public address"))
    meaning = {
        "accounts": "sign-in or an API token required (scripts/users)",
        "open": "anyone who reaches the page may use it",
    }
    rows.append(("access", access or "?", meaning.get(access, "unknown: run up")))
    return rows


def _present(found: object) -> str:
    return "missing" if found is None else "present"


# --- down ---------------------------------------------------------------------------------------------


def _queues_left(deployment: Deployment) -> list[str]:
    names, sqs = deployment.names, deployment.clients.sqs
    left = []
    for queue in (names.requests_queue, names.requests_dlq, names.log_queue, names.log_dlq):
        try:
            aws.queue_url(sqs, queue)
            left.append(queue)
        except ClientError as error:
            if not aws.is_missing_queue(error):
                raise
    return left + [url.rsplit("/", 1)[-1] for url in reply_queues(sqs, names)]


def leftovers(deployment: Deployment) -> list[str]:
    """What of the stack (its names, carrying its tag) still exists."""
    names = deployment.names

    def ours(found: dict[str, Any] | None) -> bool:
        return found is not None and infra.owned(deployment, infra.tag_dict(found.get("Tags")))

    left = [f"instance {found['InstanceId']}" for found in instance.stack_instances(deployment)]
    left += [f"security group {g['GroupId']}" for g in network.find_security_groups(deployment) if ours(g)]
    if ours(infra.find_profile(deployment)):
        left.append(f"instance profile {names.instance_profile}")
    if ours(infra.find_role(deployment)):
        left.append(f"role {names.instance_role}")
    secret = infra.find_secret_tags(deployment)
    if secret is not None and infra.owned(deployment, secret):
        left.append(f"secret {names.secret_key_parameter}")
    left += [
        f"account {name}"
        for name, tags in infra.find_accounts(deployment).items()
        if infra.owned(deployment, tags)
    ]
    left += loggroups.leftovers(deployment)
    left += alerts.leftovers(deployment)
    left += fleet.leftovers(deployment)
    left += [f"queue {queue}" for queue in _queues_left(deployment)]
    left += [f"{change.resource} {change.name}" for change in remove(deployment.clients, dry_run=True)]
    return sorted(set(left))


def down(deployment: Deployment, *, report: Report) -> list[Change]:
    """Remove everything the stack named or tagged, in dependency order, and wait until it is gone."""
    changes: list[Change] = []
    steps: list[Callable[[Deployment], list[Change]]] = [
        # The worker fleet first: its hosts stop taking requests before the queues go.
        fleet.remove,
        # Then the instance: its security group and profile cannot go while it exists.
        instance.terminate_all,
        network.remove_security_groups,
        infra.remove_profile_and_role,
        infra.remove_secret,
        infra.remove_accounts,
        alerts.remove,
        # After the instance: nothing writes to them any more.
        loggroups.remove,
        lambda deployment: remove(deployment.clients),
    ]
    for step in steps:
        for change in step(deployment):
            changes.append(change)
            report(change)

    def queues_gone() -> tuple[bool, str]:
        left = _queues_left(deployment)
        return not left, f"{len(left)} left" if left else "all gone"

    if any(change.resource == "queue" for change in changes):
        # SQS may still answer for a deleted queue for up to a minute.
        wait_for("the queues to disappear", queues_gone, timeout=180, interval=10)
    left = leftovers(deployment)
    if left:
        raise DeployError(f"still present after removal: {', '.join(left)}; run `scripts/deploy down` again")
    return changes
