"""The worker fleet (scripts/deploy up --worker-hosts MIN..MAX): worker-only hosts beside the web host,
an Auto Scaling group that follows the requests queue.

- Hosts: a launch template (Amazon Linux 2023, IMDSv2 with hop limit 2, a security group with no
  inbound rule, the worker-only role of infra.worker_host_role) whose user data runs the worker alone
  (workerhost.py); on-demand, or Spot (`--spot`: a mixed instances policy, all Spot, with Capacity
  Rebalancing).
- Scaling: target tracking on the backlog per host, metric math (AWS's "Scaling based on Amazon SQS")
  m1 / m2 = the queue's visible messages / the group's in-service hosts, against
  latency x workers per host / SECONDS_PER_REQUEST. Target tracking cannot start the first host (no
  host, no ratio), so a step policy wakes the group: an alarm on "messages visible while the group
  wants no host" sets one. Another returns it to MIN once the queue has held nothing, visible or in
  flight, for `idle_minutes`.
- Scale-in: a lifecycle hook holds a terminating host up to DRAIN_SECONDS while its drain watcher stops
  the workers warmly and completes the action.

`ensure` creates what is missing and corrects what drifted, or with `dry_run` only says so; `remove`
deletes it all. The resources remember the settings: MIN..MAX are the group's, the instance type the
template's, Spot the group's mixed instances policy, the idle time the idle alarm's; the latency, the
one setting no resource holds, is a tag of the group.
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import ClientError

from qcompute.aws import error_code
from qcompute.deploy import alerts, infra, instance, network, userdata, workerhost
from qcompute.deploy.infra import owned, tag_dict, tag_list
from qcompute.deploy.session import DeployError, Deployment
from qcompute.deploy.waiting import wait_for
from qcompute.names import STACK_TAG, StackNames
from qcompute.provision import Change

DEFAULT_INSTANCE_TYPE = "t3.small"
DEFAULT_LATENCY_SECONDS = 10
DEFAULT_IDLE_MINUTES = 10
MAX_HOSTS = 20
MAX_IDLE_MINUTES = 120
# What one worker container spends on a request, with its AWS calls (README, "Worker fleet"): the
# figure to re-measure on real AWS and change here.
SECONDS_PER_REQUEST = 0.1
# A new host counts for the scaling policy only after its first boot: Docker, the worker image, start.
WARMUP_SECONDS = 300
# How long the hook holds a terminating host: the workers' stop grace period (60 s) with room.
DRAIN_SECONDS = 180
ROLE_TAG, WORKER_HOST = instance.ROLE_TAG, instance.WORKER_HOST
LATENCY_TAG = "qcompute:worker-latency-seconds"
# Target tracking's m2, and the wake alarm's: published only while group metrics are enabled.
GROUP_METRICS = ["GroupDesiredCapacity", "GroupInServiceInstances"]
PERIOD_SECONDS = 60
LEAVING = [*instance.LIVE_STATES, "shutting-down"]
TEMPLATE_MISSING = {"InvalidLaunchTemplateName.NotFoundException", "InvalidLaunchTemplateId.NotFound"}
HOSTS = re.compile(r"^(\d{1,2})\.\.(\d{1,2})$")


def parse_hosts(value: str) -> tuple[int, int]:
    """MIN..MAX, 0 <= MIN <= MAX, 1 <= MAX <= MAX_HOSTS."""
    found = HOSTS.match(value)
    low, high = (int(found.group(1)), int(found.group(2))) if found else (-1, -1)
    if not found or not 0 <= low <= high or not 1 <= high <= MAX_HOSTS:
        raise ValueError(f"must be MIN..MAX with 0 <= MIN <= MAX and 1 <= MAX <= {MAX_HOSTS}, e.g. 0..4")
    return low, high


@dataclass(frozen=True)
class Fleet:
    min_hosts: int
    max_hosts: int
    instance_type: str = DEFAULT_INSTANCE_TYPE
    spot: bool = False
    latency_seconds: int = DEFAULT_LATENCY_SECONDS
    idle_minutes: int = DEFAULT_IDLE_MINUTES

    def describe(self) -> str:
        market = "Spot" if self.spot else "on-demand"
        return f"{self.min_hosts}..{self.max_hosts} {market} {self.instance_type} hosts"


@dataclass(frozen=True)
class FleetWanted:
    """The fleet options of up; None keeps what the stack has (or the default). hosts=() removes it."""

    hosts: tuple[int, ...] | None = None
    instance_type: str | None = None
    spot: bool | None = None
    latency_seconds: int | None = None
    idle_minutes: int | None = None


def target_backlog(fleet: Fleet, workers_per_host: int) -> float:
    """Messages per in-service host that one host works off within the acceptable latency."""
    return round(fleet.latency_seconds * workers_per_host / SECONDS_PER_REQUEST, 1)


def backlog_limit(fleet: Fleet, workers_per_host: int) -> int:
    """The frontend's MAX_BACKLOG with this fleet: room for the target backlog of MAX hosts, or target
    tracking could never ask for them (the frontend would refuse requests first); never below the
    default a web host alone has."""
    wanted = math.ceil(fleet.max_hosts * target_backlog(fleet, workers_per_host))
    return min(userdata.MAX_BACKLOG_LIMIT, max(userdata.DEFAULT_MAX_BACKLOG, wanted))


def _names(names: StackNames) -> dict[str, str]:
    fleet = names.worker_fleet
    return {
        "backlog": f"{fleet}-backlog",
        "wake": f"{fleet}-wake",
        "idle": f"{fleet}-idle",
    }


# --- lookups ------------------------------------------------------------------------------------------


def find_group(deployment: Deployment) -> dict[str, Any] | None:
    found = deployment.autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=[deployment.names.worker_fleet]
    )["AutoScalingGroups"]
    return found[0] if found else None


def find_template(deployment: Deployment) -> dict[str, Any] | None:
    """The launch template's latest version, with the template's tags as `Tags`; None if absent."""
    name = deployment.names.worker_fleet
    try:
        template = deployment.ec2.describe_launch_templates(LaunchTemplateNames=[name])["LaunchTemplates"][0]
        latest = deployment.ec2.describe_launch_template_versions(
            LaunchTemplateName=name, Versions=["$Latest"]
        )["LaunchTemplateVersions"][0]
    except ClientError as error:
        if error_code(error) in TEMPLATE_MISSING:
            return None
        raise
    return {**latest, "Tags": template.get("Tags", [])}


def find_policies(deployment: Deployment) -> dict[str, dict[str, Any]]:
    if find_group(deployment) is None:
        return {}
    found = deployment.autoscaling.describe_policies(
        AutoScalingGroupName=deployment.names.worker_fleet,
        PolicyNames=list(_names(deployment.names).values()),
    )["ScalingPolicies"]
    return {policy["PolicyName"]: policy for policy in found}


def find_alarms(deployment: Deployment) -> dict[str, dict[str, Any]]:
    names = _names(deployment.names)
    return alerts.describe_alarms(deployment, [names["wake"], names["idle"]])


def hosts(deployment: Deployment, states: list[str] = instance.LIVE_STATES) -> list[dict[str, Any]]:
    """The stack's worker hosts (instance.stack_instances leaves them out)."""
    filters = [
        {"Name": f"tag:{STACK_TAG}", "Values": [deployment.names.stack]},
        {"Name": f"tag:{ROLE_TAG}", "Values": [WORKER_HOST]},
        {"Name": "instance-state-name", "Values": states},
    ]
    pages = deployment.ec2.get_paginator("describe_instances").paginate(Filters=filters)
    return [found for page in pages for group in page["Reservations"] for found in group["Instances"]]


def _workers_per_host(deployment: Deployment, instance_type: str) -> tuple[int, int]:
    """(vCPUs, MiB of memory) of the type: one worker per vCPU."""
    found = deployment.ec2.describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"]
    if not found:
        raise DeployError(f"EC2 knows no instance type {instance_type!r} in {deployment.names.region}")
    return found[0]["VCpuInfo"]["DefaultVCpus"], found[0]["MemoryInfo"]["SizeInMiB"]


def check_memory(deployment: Deployment, instance_type: str) -> int:
    """Refuse a type whose memory does not hold one worker per vCPU; return the workers per host."""
    vcpus, memory = _workers_per_host(deployment, instance_type)
    needed = vcpus * instance.SERVICE_MEMORY_MIB["worker"] + instance.SYSTEM_MEMORY_MIB
    if memory < needed:
        raise DeployError(
            f"a {instance_type} has {memory} MiB of memory; its {vcpus} worker(s) (one per vCPU, their "
            f"limit in compose.yaml) and the system need {needed} MiB: choose a larger --worker-instance-type"
        )
    return vcpus


def current(deployment: Deployment) -> Fleet | None:
    """The fleet the stack has, read off its resources; None without a group."""
    group = find_group(deployment)
    if group is None:
        return None
    template = find_template(deployment)
    data = template["LaunchTemplateData"] if template else {}
    latency = tag_dict(group.get("Tags")).get(LATENCY_TAG, "")
    idle = find_alarms(deployment).get(_names(deployment.names)["idle"])
    return Fleet(
        min_hosts=group["MinSize"],
        max_hosts=group["MaxSize"],
        instance_type=data.get("InstanceType", DEFAULT_INSTANCE_TYPE),
        spot="MixedInstancesPolicy" in group,
        latency_seconds=int(latency) if latency.isdigit() else DEFAULT_LATENCY_SECONDS,
        idle_minutes=idle["EvaluationPeriods"] if idle else DEFAULT_IDLE_MINUTES,
    )


def settle(deployment: Deployment, wanted: FleetWanted) -> Fleet | None:
    """What was asked for, else what the stack has; None: no fleet (or remove it)."""
    if wanted.hosts == ():
        return None
    found = current(deployment)
    given = {
        "instance_type": wanted.instance_type,
        "spot": wanted.spot,
        "latency_seconds": wanted.latency_seconds,
        "idle_minutes": wanted.idle_minutes,
    }
    given = {key: value for key, value in given.items() if value is not None}
    if wanted.hosts is None and found is None:
        if given:
            options = ", ".join(f"--{key.replace('_', '-')}" for key in given)
            raise DeployError(f"{options} shape the worker fleet: give --worker-hosts MIN..MAX too")
        return None
    base = found or Fleet(0, 1)
    if wanted.hosts is not None:
        base = replace(base, min_hosts=wanted.hosts[0], max_hosts=wanted.hosts[1])
    return replace(base, **given)


def foreign(deployment: Deployment, vpc_id: str) -> list[str]:
    """The fleet's names held by resources without the stack's tag."""
    names = deployment.names

    def theirs(found: dict[str, Any] | None) -> bool:
        return found is not None and not owned(deployment, tag_dict(found.get("Tags")))

    taken = [
        f"security group {names.worker_fleet} ({group['GroupId']})"
        for group in network.find_security_groups(deployment, vpc_id, names.worker_fleet)
        if theirs(group)
    ]
    if theirs(infra.find_role(deployment, names.worker_role)):
        taken.append(f"IAM role {names.worker_role}")
    if theirs(infra.find_profile(deployment, names.worker_profile)):
        taken.append(f"instance profile {names.worker_profile}")
    if theirs(find_template(deployment)):
        taken.append(f"launch template {names.worker_fleet}")
    if theirs(find_group(deployment)):
        taken.append(f"Auto Scaling group {names.worker_fleet}")
    return taken


# --- what up makes -------------------------------------------------------------------------------------


def _template_data(
    deployment: Deployment, fleet: Fleet, group_id: str | None, image: tuple[str, str]
) -> dict[str, Any]:
    names = deployment.names
    image_id, root_device = image
    tags = tag_list({"Name": names.worker_host_name, **names.tags})
    return {
        "ImageId": image_id,
        "InstanceType": fleet.instance_type,
        "IamInstanceProfile": {"Name": names.worker_profile},
        "SecurityGroupIds": [group_id or "(the new group)"],
        "MetadataOptions": instance.METADATA_OPTIONS,
        "UserData": base64.b64encode(workerhost.user_data(names).encode()).decode(),
        "BlockDeviceMappings": [
            {
                "DeviceName": root_device,
                "Ebs": {
                    "VolumeSize": instance.ROOT_VOLUME_GIB,
                    "VolumeType": "gp3",
                    "Encrypted": True,
                    "DeleteOnTermination": True,
                },
            }
        ],
        # The instances get their tags from the group (PropagateAtLaunch), their volumes from here.
        "TagSpecifications": [{"ResourceType": "volume", "Tags": tags}],
    }


def _template_drift(found: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """What of the latest version differs, by key; the image is not compared: an `up` keeps hosts on
    the image they have until something else changes (then the new version takes the latest)."""
    data = found["LaunchTemplateData"]
    drift = []
    for key, value in wanted.items():
        have = data.get(key)
        if key == "ImageId":
            continue
        if key == "TagSpecifications":
            # moto lists the template's own tags here too.
            have = [spec for spec in have or [] if spec["ResourceType"] == "volume"]
        if key == "UserData":
            have, value = (base64.b64decode(text or "").decode() for text in (have, value))
        if have != value:
            drift.append(key)
    return drift


def _image_of(template: dict[str, Any]) -> tuple[str, str]:
    data = template["LaunchTemplateData"]
    mappings = data.get("BlockDeviceMappings") or [{}]
    return data.get("ImageId", ""), mappings[0].get("DeviceName", "/dev/xvda")


def _ensure_template(deployment: Deployment, fleet: Fleet, group_id: str | None, dry_run: bool) -> Change:
    names, ec2 = deployment.names, deployment.ec2
    detail = f"{fleet.instance_type}, Amazon Linux 2023, IMDSv2 (hop limit 2), worker only"
    found = find_template(deployment)
    if found is not None:
        drift = _template_drift(found, _template_data(deployment, fleet, group_id, _image_of(found)))
        if not drift:
            return Change("template", names.worker_fleet, "ok", detail)
    if dry_run:
        action = "create" if found is None else "update"
        return Change("template", names.worker_fleet, action, ", ".join(drift) if found else detail)
    data = _template_data(deployment, fleet, group_id, instance.latest_ami(deployment, fleet.instance_type))
    if found is None:
        ec2.create_launch_template(
            LaunchTemplateName=names.worker_fleet,
            LaunchTemplateData=data,
            TagSpecifications=[{"ResourceType": "launch-template", "Tags": tag_list(names.tags)}],
        )
        return Change("template", names.worker_fleet, "create", detail)
    # A new version: the group launches $Latest, so new hosts take it; running hosts keep theirs.
    ec2.create_launch_template_version(LaunchTemplateName=names.worker_fleet, LaunchTemplateData=data)
    return Change("template", names.worker_fleet, "update", f"new version: {', '.join(drift)}")


SPOT_DISTRIBUTION = {
    "OnDemandBaseCapacity": 0,
    "OnDemandPercentageAboveBaseCapacity": 0,
    "SpotAllocationStrategy": "price-capacity-optimized",
}


def _launch(names: StackNames, fleet: Fleet) -> dict[str, Any]:
    """How the group launches: the template, or with Spot a mixed instances policy that is all Spot."""
    template = {"LaunchTemplateName": names.worker_fleet, "Version": "$Latest"}
    if not fleet.spot:
        return {"LaunchTemplate": template}
    return {
        "MixedInstancesPolicy": {
            "LaunchTemplate": {
                "LaunchTemplateSpecification": template,
                "Overrides": [{"InstanceType": fleet.instance_type}],
            },
            "InstancesDistribution": SPOT_DISTRIBUTION,
        }
    }


def _launch_of(group: dict[str, Any]) -> dict[str, Any]:
    """The group's launch settings in `_launch`'s shape (as AWS shows them back)."""
    if "MixedInstancesPolicy" in group:
        policy = group["MixedInstancesPolicy"]
        spec = policy["LaunchTemplate"]["LaunchTemplateSpecification"]
        distribution = policy.get("InstancesDistribution", {})
        return {
            "MixedInstancesPolicy": {
                "LaunchTemplate": {
                    "LaunchTemplateSpecification": {
                        "LaunchTemplateName": spec.get("LaunchTemplateName"),
                        "Version": spec.get("Version"),
                    },
                    "Overrides": [
                        {"InstanceType": override.get("InstanceType")}
                        for override in policy["LaunchTemplate"].get("Overrides", [])
                    ],
                },
                "InstancesDistribution": {key: distribution.get(key) for key in SPOT_DISTRIBUTION},
            }
        }
    template = group.get("LaunchTemplate", {})
    return {"LaunchTemplate": {key: template.get(key) for key in ("LaunchTemplateName", "Version")}}


def _group_tags(names: StackNames, fleet: Fleet) -> list[dict[str, Any]]:
    host_tags = {"Name": names.worker_host_name, **names.tags, ROLE_TAG: WORKER_HOST}
    tags = [{"Key": key, "Value": value, "PropagateAtLaunch": True} for key, value in host_tags.items()]
    tags.append({"Key": LATENCY_TAG, "Value": str(fleet.latency_seconds), "PropagateAtLaunch": False})
    return [{**tag, "ResourceId": names.worker_fleet, "ResourceType": "auto-scaling-group"} for tag in tags]


def _ensure_group(deployment: Deployment, fleet: Fleet, subnets: list[str], dry_run: bool) -> Change:
    names, autoscaling = deployment.names, deployment.autoscaling
    detail = fleet.describe()
    shape = {
        "AutoScalingGroupName": names.worker_fleet,
        "MinSize": fleet.min_hosts,
        "MaxSize": fleet.max_hosts,
        "VPCZoneIdentifier": ",".join(subnets),
        **_launch(names, fleet),
    }
    group = find_group(deployment)
    if group is None:
        if not dry_run:
            autoscaling.create_auto_scaling_group(
                **shape,
                DesiredCapacity=fleet.min_hosts,
                DefaultInstanceWarmup=WARMUP_SECONDS,
                # Spot: a host at risk is replaced before its interruption notice.
                CapacityRebalance=fleet.spot,
                Tags=_group_tags(names, fleet),
            )
            autoscaling.enable_metrics_collection(
                AutoScalingGroupName=names.worker_fleet, Granularity="1Minute", Metrics=GROUP_METRICS
            )
        return Change("group", names.worker_fleet, "create", detail)
    drift = []
    if (group["MinSize"], group["MaxSize"]) != (fleet.min_hosts, fleet.max_hosts):
        drift.append(f"{fleet.min_hosts}..{fleet.max_hosts} hosts")
    if sorted(group.get("VPCZoneIdentifier", "").split(",")) != subnets:
        drift.append("subnets")
    if _launch_of(group) != _launch(names, fleet):
        drift.append("Spot" if fleet.spot else "on-demand")
    enabled = {metric["Metric"] for metric in group.get("EnabledMetrics", [])}
    if not set(GROUP_METRICS) <= enabled:
        drift.append("group metrics")
    have_tags = {(t["Key"], t["Value"], t.get("PropagateAtLaunch")) for t in group.get("Tags", [])}
    if not {(t["Key"], t["Value"], t["PropagateAtLaunch"]) for t in _group_tags(names, fleet)} <= have_tags:
        drift.append("tags")
    if not drift:
        return Change("group", names.worker_fleet, "ok", detail)
    if not dry_run:
        # Capacity outside the new range goes to its nearest end.
        desired = min(max(group["DesiredCapacity"], fleet.min_hosts), fleet.max_hosts)
        autoscaling.update_auto_scaling_group(**shape, DesiredCapacity=desired, CapacityRebalance=fleet.spot)
        autoscaling.create_or_update_tags(Tags=_group_tags(names, fleet))
        autoscaling.enable_metrics_collection(
            AutoScalingGroupName=names.worker_fleet, Granularity="1Minute", Metrics=GROUP_METRICS
        )
    return Change("group", names.worker_fleet, "update", ", ".join(drift))


def _hook(names: StackNames) -> dict[str, Any]:
    return {
        "LifecycleHookName": names.drain_hook,
        "AutoScalingGroupName": names.worker_fleet,
        "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
        "HeartbeatTimeout": DRAIN_SECONDS,
        # A host whose watcher never answers is terminated all the same once the time is up.
        "DefaultResult": "CONTINUE",
    }


def _ensure_hook(deployment: Deployment, exists: bool, dry_run: bool) -> Change:
    names = deployment.names
    wanted = _hook(names)
    detail = f"holds a terminating host up to {DRAIN_SECONDS} s for its workers' warm stop"
    found = []
    if exists:
        found = deployment.autoscaling.describe_lifecycle_hooks(
            AutoScalingGroupName=names.worker_fleet, LifecycleHookNames=[names.drain_hook]
        )["LifecycleHooks"]
    if found and all(found[0].get(key) == value for key, value in wanted.items()):
        return Change("lifecycle hook", names.drain_hook, "ok", detail)
    if not dry_run:
        deployment.autoscaling.put_lifecycle_hook(**wanted)
    return Change("lifecycle hook", names.drain_hook, "update" if found else "create", detail)


def _query(query_id: str, namespace: str, name: str, dimension: tuple[str, str], stat: str) -> dict:
    """One metric of a metric math expression (not returned itself)."""
    metric = {
        "Namespace": namespace,
        "MetricName": name,
        "Dimensions": [{"Name": dimension[0], "Value": dimension[1]}],
    }
    return {"Id": query_id, "MetricStat": {"Metric": metric, "Stat": stat}, "ReturnData": False}


def _queue(names: StackNames, query_id: str, name: str, stat: str) -> dict[str, Any]:
    return _query(query_id, "AWS/SQS", name, ("QueueName", names.requests_queue), stat)


def _group(names: StackNames, query_id: str, name: str, stat: str) -> dict[str, Any]:
    return _query(query_id, "AWS/AutoScaling", name, ("AutoScalingGroupName", names.worker_fleet), stat)


def _expression(expression: str, label: str) -> dict[str, Any]:
    return {"Id": "e1", "Expression": expression, "Label": label, "ReturnData": True}


def _per_minute(query: dict[str, Any]) -> dict[str, Any]:
    """An alarm's query states its period (a scaling policy's takes the policy's own)."""
    return {**query, "MetricStat": {**query["MetricStat"], "Period": PERIOD_SECONDS}}


def policies(names: StackNames, fleet: Fleet, workers_per_host: int) -> dict[str, dict[str, Any]]:
    """Each scaling policy by name, as put_scaling_policy takes it (less the group's name)."""
    called = _names(names)
    backlog = [
        _queue(names, "m1", "ApproximateNumberOfMessagesVisible", "Sum"),
        _group(names, "m2", "GroupInServiceInstances", "Average"),
        _expression("m1 / m2", "backlog per in-service host"),
    ]
    return {
        called["backlog"]: {
            "PolicyType": "TargetTrackingScaling",
            "EstimatedInstanceWarmup": WARMUP_SECONDS,
            "TargetTrackingConfiguration": {
                "TargetValue": target_backlog(fleet, workers_per_host),
                "CustomizedMetricSpecification": {"Metrics": backlog},
            },
        },
        # Alarmed only while the group wants no host: "at least one", never fewer than it has.
        called["wake"]: {
            "PolicyType": "StepScaling",
            "AdjustmentType": "ExactCapacity",
            "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
        },
        called["idle"]: {
            "PolicyType": "StepScaling",
            "AdjustmentType": "ExactCapacity",
            "StepAdjustments": [{"MetricIntervalUpperBound": 0.0, "ScalingAdjustment": fleet.min_hosts}],
        },
    }


def _same_policy(found: dict[str, Any], wanted: dict[str, Any]) -> bool:
    for key, value in wanted.items():
        have = found.get(key)
        if key == "TargetTrackingConfiguration":
            have = {k: have.get(k) for k in value} if have else None
            spec = have and have.get("CustomizedMetricSpecification")
            if spec:
                have["CustomizedMetricSpecification"] = {"Metrics": spec.get("Metrics")}
        if have != value:
            return False
    return True


def _ensure_policies(
    deployment: Deployment, fleet: Fleet, workers_per_host: int, dry_run: bool
) -> list[Change]:
    names = deployment.names
    found = find_policies(deployment)
    target = target_backlog(fleet, workers_per_host)
    details = {
        "backlog": f"target tracking: visible / in-service hosts = {target:g}",
        "wake": "one host when messages wait and the group has none",
        "idle": f"back to {fleet.min_hosts} host(s) after {fleet.idle_minutes} min of an empty queue",
    }
    changes = []
    for key, (name, wanted) in zip(details, policies(names, fleet, workers_per_host).items(), strict=True):
        have = found.get(name)
        if have is not None and _same_policy(have, wanted):
            changes.append(Change("policy", name, "ok", details[key]))
            continue
        if not dry_run:
            deployment.autoscaling.put_scaling_policy(
                AutoScalingGroupName=names.worker_fleet, PolicyName=name, **wanted
            )
        changes.append(Change("policy", name, "update" if have else "create", details[key]))
    return changes


def alarms(names: StackNames, fleet: Fleet, actions: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The wake and idle alarms by name, as put_metric_alarm takes them (less the tags); `actions`
    holds each step policy's ARN by name."""
    called = _names(names)
    visible = _per_minute(_queue(names, "m1", "ApproximateNumberOfMessagesVisible", "Maximum"))
    return {
        called["wake"]: {
            "AlarmDescription": f"requests wait in {names.requests_queue} while the fleet wants no host",
            "Metrics": [
                visible,
                _per_minute(_group(names, "m2", "GroupDesiredCapacity", "Maximum")),
                # The visible messages while the group wants no host, else 0.
                _expression("IF(FILL(m2, 0) == 0, m1, 0)", "waiting with no host"),
            ],
            "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1,
            "Threshold": 0.5,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
            "ActionsEnabled": True,
            "AlarmActions": [actions.get(called["wake"], "")],
        },
        called["idle"]: {
            "AlarmDescription": f"{names.requests_queue} held nothing for {fleet.idle_minutes} min",
            "Metrics": [
                visible,
                _per_minute(_queue(names, "m2", "ApproximateNumberOfMessagesNotVisible", "Maximum")),
                _expression("m1 + m2", "visible and in flight"),
            ],
            "EvaluationPeriods": fleet.idle_minutes,
            "DatapointsToAlarm": fleet.idle_minutes,
            "Threshold": 0.5,
            "ComparisonOperator": "LessThanThreshold",
            # SQS stops reporting a queue nothing touches: no data is an empty queue.
            "TreatMissingData": "breaching",
            "ActionsEnabled": True,
            "AlarmActions": [actions.get(called["idle"], "")],
        },
    }


def _same_alarm(found: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(found.get(key) == value for key, value in wanted.items())


def _ensure_alarms(deployment: Deployment, fleet: Fleet, dry_run: bool) -> list[Change]:
    names = deployment.names
    actions = {name: policy["PolicyARN"] for name, policy in find_policies(deployment).items()}
    found = find_alarms(deployment)
    changes = []
    for name, wanted in alarms(names, fleet, actions).items():
        have = found.get(name)
        if have is not None and _same_alarm(have, wanted):
            changes.append(Change("alarm", name, "ok", wanted["AlarmDescription"]))
            continue
        if not dry_run:
            deployment.cloudwatch.put_metric_alarm(AlarmName=name, Tags=tag_list(names.tags), **wanted)
        changes.append(Change("alarm", name, "update" if have else "create", wanted["AlarmDescription"]))
    return changes


def ensure(deployment: Deployment, fleet: Fleet | None, vpc_id: str, dry_run: bool) -> list[Change]:
    """The fleet exists as defined; or, if None, none of it does."""
    if fleet is None:
        return remove(deployment, dry_run=dry_run)
    names = deployment.names
    workers_per_host = check_memory(deployment, fleet.instance_type)
    subnets = network.default_subnets(deployment, vpc_id)
    host = infra.worker_host_role(names)
    changes = [*infra.ensure_role(deployment, dry_run, host), infra.ensure_profile(deployment, dry_run, host)]
    group_change, group_id = network.ensure_closed_group(deployment, vpc_id, names.worker_fleet, dry_run)
    changes.append(group_change)
    changes.append(_ensure_template(deployment, fleet, group_id, dry_run))
    exists = find_group(deployment) is not None
    changes.append(_ensure_group(deployment, fleet, subnets, dry_run))
    changes.append(_ensure_hook(deployment, exists, dry_run))
    changes += _ensure_policies(deployment, fleet, workers_per_host, dry_run)
    # After the policies: the alarms' actions are their ARNs (a plan of a new fleet has none yet).
    changes += _ensure_alarms(deployment, fleet, dry_run)
    return changes


# --- status, down ----------------------------------------------------------------------------------


def _visible(deployment: Deployment) -> int:
    sqs, queue = deployment.clients.sqs, deployment.names.requests_queue
    try:
        attributes = sqs.get_queue_attributes(
            QueueUrl=sqs.get_queue_url(QueueName=queue)["QueueUrl"],
            AttributeNames=["ApproximateNumberOfMessages"],
        )["Attributes"]
    except ClientError:
        return 0
    return int(attributes.get("ApproximateNumberOfMessages", "0"))


def status_rows(deployment: Deployment) -> list[tuple[str, str, str]]:
    """The fleet: its hosts by state, the backlog per in-service host against its target, the alarms."""
    names = deployment.names
    group = find_group(deployment)
    if group is None:
        return [("worker fleet", "none", "web host only (scripts/deploy up --worker-hosts MIN..MAX)")]
    fleet = current(deployment)
    assert fleet is not None
    states = [host["LifecycleState"] for host in group.get("Instances", [])]
    in_service = states.count("InService")
    pending = sum(state.startswith("Pending") for state in states)
    leaving = sum(state.startswith("Terminating") for state in states)
    rows = [
        (
            "worker fleet",
            names.worker_fleet,
            f"desired {group['DesiredCapacity']}, in service {in_service}, pending {pending}, "
            f"terminating {leaving} ({fleet.describe()})",
        )
    ]
    visible = _visible(deployment)
    target = target_backlog(fleet, _workers_per_host(deployment, fleet.instance_type)[0])
    per_host = f"{visible / in_service:g}" if in_service else ("no host in service" if visible else "0")
    backlog = f"{visible} visible, per host in service {per_host} (target {target:g})"
    rows.append(("backlog", names.requests_queue, backlog))
    for name, alarm in find_alarms(deployment).items():
        rows.append(("alarm", name, alarm["StateValue"]))
    return rows


def leftovers(deployment: Deployment) -> list[str]:
    names = deployment.names

    def ours(found: dict[str, Any] | None) -> bool:
        return found is not None and owned(deployment, tag_dict(found.get("Tags")))

    left = [f"worker host {host['InstanceId']}" for host in hosts(deployment)]
    if ours(find_group(deployment)):
        left.append(f"Auto Scaling group {names.worker_fleet}")
    if ours(find_template(deployment)):
        left.append(f"launch template {names.worker_fleet}")
    left += [f"alarm {name}" for name in find_alarms(deployment)]
    left += [
        f"security group {group['GroupId']}"
        for group in network.find_security_groups(deployment, name=names.worker_fleet)
        if ours(group)
    ]
    if ours(infra.find_profile(deployment, names.worker_profile)):
        left.append(f"instance profile {names.worker_profile}")
    if ours(infra.find_role(deployment, names.worker_role)):
        left.append(f"role {names.worker_role}")
    return left


def _remove_group(deployment: Deployment, dry_run: bool) -> list[Change]:
    names, autoscaling = deployment.names, deployment.autoscaling
    group = find_group(deployment)
    if group is None:
        return []
    if not owned(deployment, tag_dict(group.get("Tags"))):
        return [Change("group", names.worker_fleet, "skip", "not tagged with this stack")]
    changes = [Change("policy", name, "delete") for name in find_policies(deployment)]
    if dry_run:
        return [*changes, Change("group", names.worker_fleet, "delete", "and its hosts")]
    for name in find_policies(deployment):
        autoscaling.delete_policy(AutoScalingGroupName=names.worker_fleet, PolicyName=name)
    # Its hosts go without a warm stop: the queues go too (`down`), or SQS hands their messages on.
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName=names.worker_fleet, ForceDelete=True)

    def gone() -> tuple[bool, str]:
        left = find_group(deployment) is not None or hosts(deployment, LEAVING)
        return not left, "its hosts are terminating" if left else "gone"

    # Its security group and profile cannot go while a host uses them.
    wait_for(f"Auto Scaling group {names.worker_fleet} to go", gone, timeout=900, interval=10)
    return [*changes, Change("group", names.worker_fleet, "delete", "and its hosts")]


def remove(deployment: Deployment, *, dry_run: bool = False) -> list[Change]:
    """Delete the fleet: alarms, policies, group and hosts, template, security group, role and profile;
    what is not tagged the stack's stays."""
    names = deployment.names
    changes = alerts.remove_alarms(deployment, find_alarms(deployment), dry_run)
    changes += _remove_group(deployment, dry_run)
    template = find_template(deployment)
    if template is not None:
        if not owned(deployment, tag_dict(template.get("Tags"))):
            changes.append(Change("template", names.worker_fleet, "skip", "not tagged with it"))
        else:
            if not dry_run:
                deployment.ec2.delete_launch_template(LaunchTemplateName=names.worker_fleet)
            changes.append(Change("template", names.worker_fleet, "delete"))
    if dry_run:
        groups = network.find_security_groups(deployment, name=names.worker_fleet)
        changes += [Change("security group", f"{g['GroupName']} ({g['GroupId']})", "delete") for g in groups]
        if infra.find_profile(deployment, names.worker_profile):
            changes.append(Change("profile", names.worker_profile, "delete"))
        if infra.find_role(deployment, names.worker_role):
            changes.append(Change("role", names.worker_role, "delete"))
        return changes
    changes += network.remove_security_groups(deployment, names.worker_fleet)
    changes += infra.remove_profile_and_role(deployment, infra.worker_host_role(names))
    return changes
