"""The stack's one EC2 instance: launch it, keep it as defined, roll new bundles out to it, end it.

A rollout keeps the instance, and so its address: SSM Run Command tells it to fetch the new bundle
and roll over to it with scripts/rollout (the release script, userdata.py). The instance's tags
record the bundle it runs and its release settings (workers, access mode, domain, ACME e-mail): they
are what the next `up` keeps when an option is left out, and their `:previous` copies what `rollback`
returns to.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from qcompute.aws import error_code
from qcompute.deploy import userdata
from qcompute.deploy.infra import tag_dict, tag_list
from qcompute.deploy.session import DeployError, Deployment
from qcompute.deploy.waiting import wait_for
from qcompute.names import STACK_TAG
from qcompute.provision import Change

# 2 vCPU, 2 GiB: room for the services' memory limits (below) and the system. A t3.micro's 1 GiB is
# not: a million-integer request needs 100-250 MiB in each service while it is handled (README).
DEFAULT_INSTANCE_TYPE = "t3.small"
# compose.yaml's default memory limits (MiB; tests/deploy checks they agree) and what Amazon Linux,
# Docker and the SSM agent keep for themselves: an instance must hold them all.
SERVICE_MEMORY_MIB = {"frontend": 448, "worker": 512, "logger": 160, "proxy": 96}
SYSTEM_MEMORY_MIB = 400
DEFAULT_WORKERS = 1
ROOT_VOLUME_GIB = 16  # Docker images and build cache; the AMI's own 8 GiB is tight
BUNDLE_TAG = "qcompute:bundle"
WORKERS_TAG = "qcompute:workers"
ACCESS_TAG = "qcompute:access"
DOMAIN_TAG = "qcompute:domain"  # empty: no domain, plain HTTP
EMAIL_TAG = "qcompute:acme-email"
# The frontend's backlog limit when a worker fleet raised it; empty: the default.
MAX_BACKLOG_TAG = "qcompute:max-backlog"
# What the instance ran before its last rollout, for `deploy rollback`: each release tag with this suffix.
PREVIOUS = ":previous"
RELEASE_TAGS = (BUNDLE_TAG, WORKERS_TAG, ACCESS_TAG, DOMAIN_TAG, EMAIL_TAG, MAX_BACKLOG_TAG)
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
# Containers reach the instance role through IMDSv2 only if a response may take two hops.
METADATA_OPTIONS = {"HttpTokens": "required", "HttpPutResponseHopLimit": 2, "HttpEndpoint": "enabled"}
AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}"
# The worker fleet's hosts carry the stack's tag too, and this one: they are not the web host.
ROLE_TAG = "qcompute:role"
WORKER_HOST = "worker-host"


@dataclass(frozen=True)
class InstanceSpec:
    instance_type: str
    bundle_digest: str
    release: userdata.Release

    @property
    def workers(self) -> int:
        return self.release.workers

    def describe(self) -> str:
        release = self.release
        return (
            f"{self.instance_type}, {release.workers} worker(s), access {release.access}, "
            f"domain {release.domain or 'none'}, bundle {self.bundle_digest[:12]}"
        )


def stack_instances(deployment: Deployment, states: list[str] = LIVE_STATES) -> list[dict[str, Any]]:
    """The web host: the instances carrying the stack's tag (exact value: a neighbour "<stack>-2" never
    matches), less the worker fleet's hosts (fleet.py)."""
    filters = [
        {"Name": f"tag:{STACK_TAG}", "Values": [deployment.names.stack]},
        {"Name": "instance-state-name", "Values": states},
    ]
    pages = deployment.ec2.get_paginator("describe_instances").paginate(Filters=filters)
    return [
        instance
        for page in pages
        for reservation in page["Reservations"]
        for instance in reservation["Instances"]
        if tag_dict(instance.get("Tags")).get(ROLE_TAG) != WORKER_HOST
    ]


def the_instance(deployment: Deployment) -> dict[str, Any] | None:
    instances = stack_instances(deployment)
    if len(instances) > 1:
        ids = ", ".join(instance["InstanceId"] for instance in instances)
        raise DeployError(
            f"several instances carry the tag {STACK_TAG}={deployment.names.stack} ({ids}): "
            "run `scripts/deploy down` for this stack, then `up` again"
        )
    return instances[0] if instances else None


def describe(deployment: Deployment, instance_id: str) -> dict[str, Any] | None:
    try:
        reservations = deployment.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except ClientError as error:
        if error_code(error) == "InvalidInstanceID.NotFound":  # not visible yet (eventual consistency)
            return None
        raise
    return reservations[0]["Instances"][0] if reservations else None


def public_url(instance: dict[str, Any]) -> str | None:
    address = instance.get("PublicIpAddress")
    return f"http://{address}/" if address else None


def release_tags(instance: dict[str, Any] | None) -> dict[str, str]:
    """The release settings an instance was last given (its tags), as recorded; {} without one."""
    tags = tag_dict(instance.get("Tags")) if instance else {}
    return {key: tags[key] for key in RELEASE_TAGS[1:] if key in tags}


def summary(instance: dict[str, Any]) -> str:
    tags = tag_dict(instance.get("Tags"))
    return (
        f"{instance['State']['Name']}, {instance['InstanceType']}, "
        f"bundle {tags.get(BUNDLE_TAG, '?')[:12]}, {tags.get(WORKERS_TAG, '?')} worker(s), "
        f"access {tags.get(ACCESS_TAG, '?')}, domain {tags.get(DOMAIN_TAG) or 'none'}"
    )


def memory_needed_mib(workers: int) -> int:
    """What the containers may use with this many workers, plus the system's share. A rollout runs the
    new release beside the old one for a minute or so: the services use far less than their limits
    then (idle), and the instance's swap takes any excess."""
    limits = SERVICE_MEMORY_MIB
    services = limits["frontend"] + limits["logger"] + limits["proxy"] + workers * limits["worker"]
    return services + SYSTEM_MEMORY_MIB


def check_memory(deployment: Deployment, spec: InstanceSpec) -> None:
    """Refuse an instance too small for the services' memory limits: the kernel would kill them."""
    found = deployment.ec2.describe_instance_types(InstanceTypes=[spec.instance_type])["InstanceTypes"]
    memory = found[0].get("MemoryInfo", {}).get("SizeInMiB") if found else None
    needed = memory_needed_mib(spec.workers)
    if memory is not None and memory < needed:
        raise DeployError(
            f"a {spec.instance_type} has {memory} MiB of memory; {spec.workers} worker(s), the frontend, "
            "the logger, the proxy (their limits in compose.yaml) and the system need "
            f"{needed} MiB: choose a larger --instance-type (t3.small holds 1 worker, t3.medium 5) or "
            "fewer --workers"
        )


def latest_ami(deployment: Deployment, instance_type: str) -> tuple[str, str]:
    """The latest Amazon Linux 2023 image for the type's architecture, and its root device name."""
    found = deployment.ec2.describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"]
    architectures = found[0]["ProcessorInfo"]["SupportedArchitectures"] if found else []
    arch = "arm64" if "arm64" in architectures else "x86_64"
    image_id = deployment.ssm.get_parameter(Name=AMI_PARAMETER.format(arch=arch))["Parameter"]["Value"]
    images = deployment.ec2.describe_images(ImageIds=[image_id])["Images"]
    return image_id, images[0].get("RootDeviceName", "/dev/xvda") if images else "/dev/xvda"


def _release_tags(release: userdata.Release) -> dict[str, str]:
    default_backlog = release.max_backlog == userdata.DEFAULT_MAX_BACKLOG
    return {
        WORKERS_TAG: str(release.workers),
        ACCESS_TAG: release.access,
        DOMAIN_TAG: release.domain,
        EMAIL_TAG: release.email,
        MAX_BACKLOG_TAG: "" if default_backlog else str(release.max_backlog),
    }


def _instance_tags(deployment: Deployment, spec: InstanceSpec) -> dict[str, str]:
    return {
        "Name": deployment.names.instance_name,
        **deployment.names.tags,
        BUNDLE_TAG: spec.bundle_digest,
        **_release_tags(spec.release),
    }


def launch(deployment: Deployment, spec: InstanceSpec, group_id: str) -> str:
    names = deployment.names
    image_id, root_device = latest_ami(deployment, spec.instance_type)
    resource_tags = tag_list({"Name": names.instance_name, **names.tags})
    parameters = {
        "ImageId": image_id,
        "InstanceType": spec.instance_type,
        "MinCount": 1,
        "MaxCount": 1,
        "IamInstanceProfile": {"Name": names.instance_profile},
        "SecurityGroupIds": [group_id],
        "MetadataOptions": METADATA_OPTIONS,
        "UserData": userdata.user_data(names, spec.release),
        "BlockDeviceMappings": [
            {
                "DeviceName": root_device,
                "Ebs": {
                    "VolumeSize": ROOT_VOLUME_GIB,
                    "VolumeType": "gp3",
                    "Encrypted": True,
                    "DeleteOnTermination": True,
                },
            }
        ],
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": tag_list(_instance_tags(deployment, spec))},
            {"ResourceType": "volume", "Tags": resource_tags},
            {"ResourceType": "network-interface", "Tags": resource_tags},
        ],
        # Retries of this call (botocore's, or ours below) never start a second instance.
        "ClientToken": str(uuid.uuid4()),
    }
    launched: list[str] = []

    def attempt() -> tuple[bool, str]:
        try:
            response = deployment.ec2.run_instances(**parameters)
        except ClientError as error:
            # A new instance profile takes a few seconds to reach EC2 (IAM is eventually consistent).
            if error_code(error) == "InvalidParameterValue" and "iamInstanceProfile" in str(error):
                return False, "the new instance profile is not visible to EC2 yet"
            raise
        launched.append(response["Instances"][0]["InstanceId"])
        return True, f"launched {launched[0]} ({image_id})"

    wait_for("EC2 to launch the instance", attempt, timeout=180, interval=10)
    return launched[0]


def wait_running(deployment: Deployment, instance_id: str) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    def running() -> tuple[bool, str]:
        instance = describe(deployment, instance_id)
        if instance is None:
            return False, "not visible yet"
        seen[:] = [instance]
        state = instance["State"]["Name"]
        if state in {"shutting-down", "terminated"}:
            raise DeployError(f"instance {instance_id} is {state}: see its state reason in the EC2 console")
        return state == "running", state

    wait_for(f"instance {instance_id} to run", running, timeout=600, interval=5)
    return seen[0]


def _drift(
    deployment: Deployment, instance: dict[str, Any], spec: InstanceSpec, group_id: str | None
) -> list[str]:
    """What differs from the definition, as short phrases (also the order of the repairs)."""
    tags = tag_dict(instance.get("Tags"))
    drift = []
    if instance["State"]["Name"] in {"stopped", "stopping"}:
        drift.append("start")
    options = instance.get("MetadataOptions", {})
    if any(options.get(key) != value for key, value in METADATA_OPTIONS.items()):
        drift.append("IMDSv2 and hop limit 2")
    profile = instance.get("IamInstanceProfile", {}).get("Arn", "")
    if not profile.endswith(f":instance-profile/{deployment.names.instance_profile}"):
        drift.append("instance profile")
    if group_id and [group["GroupId"] for group in instance.get("SecurityGroups", [])] != [group_id]:
        drift.append("security group")
    if tags.get(BUNDLE_TAG) != spec.bundle_digest:
        drift.append(f"roll out bundle {spec.bundle_digest[:12]}")
    else:
        release = spec.release
        wanted = _release_tags(release)
        changed = {key for key, value in wanted.items() if tags.get(key, "") != value}
        phrases = {
            WORKERS_TAG: f"{release.workers} worker(s)",
            ACCESS_TAG: f"access {release.access}",
            DOMAIN_TAG: f"domain {release.domain or 'none'}",
            EMAIL_TAG: f"ACME e-mail {release.email or 'none'}",
            MAX_BACKLOG_TAG: f"backlog limit {release.max_backlog}",
        }
        if changed:
            drift.append("roll out " + ", ".join(phrase for key, phrase in phrases.items() if key in changed))
    return drift


def ensure_instance(
    deployment: Deployment, spec: InstanceSpec, group_id: str | None, dry_run: bool
) -> Change:
    instance = the_instance(deployment)
    if instance is None:
        detail = spec.describe()
        if dry_run:
            return Change("instance", deployment.names.instance_name, "create", detail)
        assert group_id is not None
        return Change("instance", launch(deployment, spec, group_id), "create", detail)
    instance_id = instance["InstanceId"]
    drift = _drift(deployment, instance, spec, group_id)
    if not drift:
        return Change("instance", instance_id, "ok", summary(instance))
    if not dry_run:
        _repair(deployment, instance, spec, group_id, drift)
    return Change("instance", instance_id, "update", ", ".join(drift))


def _repair(
    deployment: Deployment,
    instance: dict[str, Any],
    spec: InstanceSpec,
    group_id: str | None,
    drift: list[str],
) -> None:
    ec2, instance_id = deployment.ec2, instance["InstanceId"]
    if "start" in drift:
        ec2.start_instances(InstanceIds=[instance_id])
        wait_running(deployment, instance_id)
    if "IMDSv2 and hop limit 2" in drift:
        ec2.modify_instance_metadata_options(InstanceId=instance_id, **METADATA_OPTIONS)
    if "instance profile" in drift:
        profile = {"Name": deployment.names.instance_profile}
        associations = ec2.describe_iam_instance_profile_associations(
            Filters=[{"Name": "instance-id", "Values": [instance_id]}]
        )["IamInstanceProfileAssociations"]
        if associations:
            ec2.replace_iam_instance_profile_association(
                IamInstanceProfile=profile, AssociationId=associations[0]["AssociationId"]
            )
        else:
            ec2.associate_iam_instance_profile(IamInstanceProfile=profile, InstanceId=instance_id)
    if "security group" in drift and group_id:
        ec2.modify_instance_attribute(InstanceId=instance_id, Groups=[group_id])
    tags = _instance_tags(deployment, spec)
    if any(phrase.startswith("roll out") for phrase in drift):
        roll_out(deployment, instance_id, spec)
        # The release that served until now is what `rollback` returns to (the instance keeps it).
        current = tag_dict(instance.get("Tags"))
        tags.update({f"{key}{PREVIOUS}": current.get(key, "") for key in RELEASE_TAGS})
    # Recorded last: a rollout that failed is tried again by the next `up`.
    ec2.create_tags(Resources=[instance_id], Tags=tag_list(tags))


def _run_release(
    deployment: Deployment, instance_id: str, commands: list[str], comment: str, what: str, interval: float
) -> None:
    """Run the release script on the instance through SSM Run Command, and wait for its outcome."""
    ssm, names = deployment.ssm, deployment.names
    sent: list[str] = []

    def send() -> tuple[bool, str]:
        try:
            command = ssm.send_command(
                InstanceIds=[instance_id],
                DocumentName="AWS-RunShellScript",
                Comment=f"qcompute {names.stack}: {comment}",
                Parameters={"commands": commands, "executionTimeout": ["3600"]},
                TimeoutSeconds=600,
            )["Command"]
        except ClientError as error:
            if error_code(error) == "InvalidInstanceId":  # booting: its SSM agent has not registered
                return False, "its SSM agent has not registered yet"
            raise
        sent.append(command["CommandId"])
        return True, f"command {command['CommandId']} sent"

    wait_for(f"instance {instance_id} to take commands", send, timeout=600, interval=min(interval, 10))

    def finished() -> tuple[bool, str]:
        try:
            invocation = ssm.get_command_invocation(CommandId=sent[0], InstanceId=instance_id)
        except ClientError as error:
            if error_code(error) == "InvocationDoesNotExist":
                return False, "queued"
            raise
        status = invocation["Status"]
        if status in {"Failed", "Cancelled", "TimedOut", "Cancelling"}:
            # The release script's own words: a refused release says why (scripts/rollout).
            said = [invocation.get(key) or "" for key in ("StandardOutputContent", "StandardErrorContent")]
            output = "\n".join(said).strip().splitlines()[-6:]
            # A release script that failed put the release that served back; one cut off (a timeout,
            # a cancel) may not have: its next run finishes that first.
            after = (
                "the release that served before still serves"
                if status == "Failed"
                else "what serves now is not known: `scripts/deploy status`, and the instance's release "
                "script puts the release that served back at its next run"
            )
            raise DeployError(
                f"{what} on {instance_id} ended {status}: {' | '.join(output) or 'no output'}; {after}. "
                "Look at the instance through Session Manager (see README), then run the command again"
            )
        return status == "Success", status.lower()

    wait_for(what, finished, timeout=1800, interval=interval)


def roll_out(deployment: Deployment, instance_id: str, spec: InstanceSpec) -> None:
    """Have the instance fetch the bundle and roll over to it (or refuse it), and wait for the outcome."""
    _run_release(
        deployment,
        instance_id,
        userdata.rollout_commands(deployment.names, spec.release),
        f"roll out bundle {spec.bundle_digest[:12]}",
        "the rollout on the instance (scripts/rollout)",
        interval=10,
    )


def rollback(deployment: Deployment) -> tuple[str, str]:
    """Return the instance to the release before its last rollout, with the images it kept (no build);
    the release rolled back from becomes the previous one. Returns the bundles (from, to)."""
    found = the_instance(deployment)
    if found is None:
        raise DeployError(f"stack {deployment.names.stack!r} has no instance: nothing to roll back")
    tags = tag_dict(found.get("Tags"))
    if not tags.get(f"{BUNDLE_TAG}{PREVIOUS}"):
        raise DeployError(
            "the instance has no previous release to return to: a rollback needs one `up` that rolled "
            "out a change since the instance was made (or since this version of scripts/deploy)"
        )
    _run_release(
        deployment,
        found["InstanceId"],
        ["set -eu", f"{userdata.RELEASE_SCRIPT} --rollback"],
        f"roll back to bundle {tags[f'{BUNDLE_TAG}{PREVIOUS}'][:12]}",
        "the rollback on the instance",
        interval=2,  # it takes about half a minute: look often
    )
    swapped = {}
    for key in RELEASE_TAGS:
        swapped[key], swapped[f"{key}{PREVIOUS}"] = tags.get(f"{key}{PREVIOUS}", ""), tags.get(key, "")
    deployment.ec2.create_tags(Resources=[found["InstanceId"]], Tags=tag_list(swapped))
    return tags.get(BUNDLE_TAG, ""), swapped[BUNDLE_TAG]


def terminate_all(deployment: Deployment) -> list[Change]:
    """Terminate the stack's instances and wait until they are gone: their group and profile wait on it."""
    instances = stack_instances(deployment, [*LIVE_STATES, "shutting-down"])
    if not instances:
        return []
    ids = [instance["InstanceId"] for instance in instances]
    live = [instance["InstanceId"] for instance in instances if instance["State"]["Name"] != "shutting-down"]
    if live:
        deployment.ec2.terminate_instances(InstanceIds=live)

    def terminated() -> tuple[bool, str]:
        remaining = stack_instances(deployment, [*LIVE_STATES, "shutting-down"])
        states = sorted({instance["State"]["Name"] for instance in remaining})
        return not remaining, ", ".join(states) or "terminated"

    wait_for(f"instance {', '.join(ids)} to terminate", terminated, timeout=900, interval=10)
    return [Change("instance", instance_id, "delete") for instance_id in ids]
