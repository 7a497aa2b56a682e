"""The worker fleet (scripts/deploy up --worker-hosts) against the deploy tests' moto server: the launch
template, group, scaling policies (with their metric math), lifecycle hook and alarms as planned; the
hosts' role is the worker's alone; a second `up` changes nothing; `down` leaves nothing. moto never
scales a group or fires an alarm: these tests check what was asked of AWS, not how AWS then scales."""

from __future__ import annotations

import base64

from qcompute import iam
from qcompute.deploy import fleet, infra, instance, stack, workerhost
from qcompute.deploy.infra import tag_dict
from qcompute.names import STACK_TAG


def _fleet_rows(output: str, deploy) -> list[tuple[str, str, str]]:
    fleet_names = ("-worker-", "-workers")
    return [row for row in deploy.changes(output) if any(name in row[2] for name in fleet_names)]


def _policies(deployment) -> dict[str, dict]:
    return fleet.find_policies(deployment)


def _state(deployment) -> dict:
    """Everything of the fleet a repeated `up` could change."""
    names = deployment.names
    template = deployment.ec2.describe_launch_templates(LaunchTemplateNames=[names.worker_fleet])
    return {
        "group": fleet.find_group(deployment),
        "template versions": template["LaunchTemplates"][0]["LatestVersionNumber"],
        "policies": _policies(deployment),
        "hooks": deployment.autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=names.worker_fleet)[
            "LifecycleHooks"
        ],
        "alarms": {
            name: {k: v for k, v in alarm.items() if "Timestamp" not in k and "State" not in k}
            for name, alarm in fleet.find_alarms(deployment).items()
        },
        "role policy": deployment.iam.get_role_policy(
            RoleName=names.worker_role, PolicyName=iam.WORKER_HOST_POLICY_NAME
        )["PolicyDocument"],
    }


def test_a_fleet_from_zero_as_planned_and_a_second_up_changes_nothing(deploy, inspect, stack_name) -> None:
    planned = deploy("plan", "--stack", stack_name, "--worker-hosts", "0..3")
    assert {action for action, _, _ in deploy.changes(planned.stdout)} == {"create"}
    rows = _fleet_rows(planned.stdout, deploy)
    assert [resource for _, resource, _ in rows] == [
        "role",
        "role policy",
        "profile",
        "security group",
        "template",
        "group",
        "lifecycle hook",
        "policy",
        "policy",
        "policy",
        "alarm",
        "alarm",
    ]
    deployment = inspect(stack_name)
    assert fleet.find_group(deployment) is None, "a plan changes nothing"

    first = deploy("up", "--stack", stack_name, "--worker-hosts", "0..3", "--no-wait")
    assert [a for a, _, _ in _fleet_rows(first.stdout, deploy)] == ["create"] * len(rows)
    names = deployment.names

    # The launch template: Amazon Linux 2023, IMDSv2 with hop limit 2, the worker-only profile, the
    # group that lets nothing in, the worker-only user data.
    template = fleet.find_template(deployment)
    data = template["LaunchTemplateData"]
    ami = deployment.ssm.get_parameter(Name=instance.AMI_PARAMETER.format(arch="x86_64"))["Parameter"]
    assert data["ImageId"] == ami["Value"]
    assert data["InstanceType"] == "t3.small"
    assert data["MetadataOptions"] == {
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": 2,
        "HttpEndpoint": "enabled",
    }
    assert data["IamInstanceProfile"] == {"Name": names.worker_profile}
    assert base64.b64decode(data["UserData"]).decode() == workerhost.user_data(names)
    assert "KeyName" not in data, "no key pair, no SSH"
    assert tag_dict(template["Tags"])[STACK_TAG] == stack_name
    (group_id,) = data["SecurityGroupIds"]
    (security_group,) = deployment.ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    assert security_group["GroupName"] == names.worker_fleet
    assert security_group["IpPermissions"] == [], "no inbound port at all"

    # The group: from zero, the template's latest version, every default subnet, group metrics on.
    group = fleet.find_group(deployment)
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (0, 3, 0)
    assert group["Instances"] == []
    assert group["LaunchTemplate"]["LaunchTemplateName"] == names.worker_fleet
    assert group["LaunchTemplate"]["Version"] == "$Latest"
    assert "MixedInstancesPolicy" not in group, "on-demand"
    subnets = deployment.ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])
    assert sorted(group["VPCZoneIdentifier"].split(",")) == sorted(s["SubnetId"] for s in subnets["Subnets"])
    assert {m["Metric"] for m in group["EnabledMetrics"]} == set(fleet.GROUP_METRICS)
    tags = {t["Key"]: (t["Value"], t["PropagateAtLaunch"]) for t in group["Tags"]}
    assert tags[STACK_TAG] == (stack_name, True)
    assert tags[instance.ROLE_TAG] == (instance.WORKER_HOST, True), "tells the hosts from the web host"

    # Target tracking on the backlog per in-service host: AWS's SQS recipe, m1 / m2.
    policies = _policies(deployment)
    backlog = policies[f"{names.worker_fleet}-backlog"]
    assert backlog["PolicyType"] == "TargetTrackingScaling"
    tracking = backlog["TargetTrackingConfiguration"]
    # 10 s acceptable latency x 2 workers (a t3.small's vCPUs) / 0.1 s per request.
    assert tracking["TargetValue"] == 200.0
    assert tracking.get("DisableScaleIn", False) is False
    m1, m2, e1 = tracking["CustomizedMetricSpecification"]["Metrics"]
    assert (m1["Id"], m1["MetricStat"]["Metric"]["MetricName"], m1["MetricStat"]["Stat"]) == (
        "m1",
        "ApproximateNumberOfMessagesVisible",
        "Sum",
    )
    assert m1["MetricStat"]["Metric"]["Dimensions"] == [{"Name": "QueueName", "Value": names.requests_queue}]
    assert (m2["MetricStat"]["Metric"]["Namespace"], m2["MetricStat"]["Metric"]["MetricName"]) == (
        "AWS/AutoScaling",
        "GroupInServiceInstances",
    )
    assert m2["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "AutoScalingGroupName", "Value": names.worker_fleet}
    ]
    assert (e1["Expression"], e1["ReturnData"], m1["ReturnData"], m2["ReturnData"]) == (
        "m1 / m2",
        True,
        False,
        False,
    )
    assert backlog["EstimatedInstanceWarmup"] == fleet.WARMUP_SECONDS

    # From zero: one host when requests wait and the group wants none; back to MIN after idle minutes.
    wake, idle = policies[f"{names.worker_fleet}-wake"], policies[f"{names.worker_fleet}-idle"]
    assert (wake["AdjustmentType"], wake["StepAdjustments"]) == (
        "ExactCapacity",
        [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
    )
    assert (idle["AdjustmentType"], idle["StepAdjustments"]) == (
        "ExactCapacity",
        [{"MetricIntervalUpperBound": 0.0, "ScalingAdjustment": 0}],
    )
    alarms = fleet.find_alarms(deployment)
    woken = alarms[f"{names.worker_fleet}-wake"]
    assert woken["AlarmActions"] == [wake["PolicyARN"]]
    assert [q.get("Expression") for q in woken["Metrics"]] == [None, None, "IF(FILL(m2, 0) == 0, m1, 0)"]
    assert [q["MetricStat"]["Metric"]["MetricName"] for q in woken["Metrics"][:2]] == [
        "ApproximateNumberOfMessagesVisible",
        "GroupDesiredCapacity",
    ]
    assert (woken["ComparisonOperator"], woken["Threshold"], woken["EvaluationPeriods"]) == (
        "GreaterThanThreshold",
        0.5,
        1,
    )
    quiet = alarms[f"{names.worker_fleet}-idle"]
    assert quiet["AlarmActions"] == [idle["PolicyARN"]]
    assert quiet["Metrics"][2]["Expression"] == "m1 + m2"
    assert [q["MetricStat"]["Metric"]["MetricName"] for q in quiet["Metrics"][:2]] == [
        "ApproximateNumberOfMessagesVisible",
        "ApproximateNumberOfMessagesNotVisible",
    ]
    assert (quiet["ComparisonOperator"], quiet["EvaluationPeriods"], quiet["DatapointsToAlarm"]) == (
        "LessThanThreshold",
        fleet.DEFAULT_IDLE_MINUTES,
        fleet.DEFAULT_IDLE_MINUTES,
    )
    assert quiet["TreatMissingData"] == "breaching", "an inactive queue reports nothing: it is empty"

    # The hook that gives a terminating host its warm stop.
    (hook,) = deployment.autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=names.worker_fleet)[
        "LifecycleHooks"
    ]
    assert (hook["LifecycleHookName"], hook["LifecycleTransition"]) == (
        names.drain_hook,
        "autoscaling:EC2_INSTANCE_TERMINATING",
    )
    assert (hook["HeartbeatTimeout"], hook["DefaultResult"]) == (fleet.DRAIN_SECONDS, "CONTINUE")

    # The hosts' role: EC2 trust, the worker-host policy, nothing attached.
    role = deployment.iam.get_role(RoleName=names.worker_role)["Role"]
    assert role["AssumeRolePolicyDocument"] == iam.ec2_trust_policy()
    before = _state(deployment)
    assert before["role policy"] == iam.worker_host_policy(names)
    assert deployment.iam.list_attached_role_policies(RoleName=names.worker_role)["AttachedPolicies"] == []
    assert [r["RoleName"] for r in infra.find_profile(deployment, names.worker_profile)["Roles"]] == [
        names.worker_role
    ]

    again = deploy("up", "--stack", stack_name, "--no-wait")
    assert {action for action, _, _ in deploy.changes(again.stdout)} == {"ok"}
    assert len(_fleet_rows(again.stdout, deploy)) == len(rows), "left out, the fleet is kept"
    assert _state(deployment) == before

    shown = deploy("status", "--stack", stack_name).stdout
    assert "desired 0, in service 0, pending 0, terminating 0 (0..3 on-demand t3.small hosts)" in shown
    assert "0 visible, per host in service 0 (target 200)" in shown

    removed = deploy("down", "--stack", stack_name, "--yes")
    assert ("delete", "group", f"{names.worker_fleet} (and its hosts)") in deploy.changes(removed.stdout)
    assert stack.leftovers(deployment) == []
    assert fleet.leftovers(deployment) == []
    assert fleet.find_template(deployment) is None
    assert infra.find_role(deployment, names.worker_role) is None


def test_spot_hosts_beside_the_web_host_reshaped_then_removed(deploy, inspect, stack_name) -> None:
    first = deploy(
        "up", "--stack", stack_name, "--worker-hosts", "1..2", "--spot",
        "--worker-instance-type", "t3.medium", "--no-wait",
    )  # fmt: skip
    deployment = inspect(stack_name)
    names = deployment.names
    group = fleet.find_group(deployment)
    mixed = group["MixedInstancesPolicy"]
    assert mixed["LaunchTemplate"]["Overrides"] == [{"InstanceType": "t3.medium"}]
    assert mixed["InstancesDistribution"]["OnDemandPercentageAboveBaseCapacity"] == 0, "all Spot"
    assert mixed["InstancesDistribution"]["SpotAllocationStrategy"] == "price-capacity-optimized"
    assert group["CapacityRebalance"] is True
    # moto starts MIN hosts; the web host is still the one instance `up` and `status` speak of.
    (host,) = fleet.hosts(deployment)
    assert tag_dict(host["Tags"])[instance.ROLE_TAG] == instance.WORKER_HOST
    (web,) = instance.stack_instances(deployment)
    assert web["InstanceId"] != host["InstanceId"]
    assert f"URL: http://{web['PublicIpAddress']}/" in first.stdout
    # 10 s x 2 workers (a t3.medium's 2 vCPUs) / 0.1 s.
    backlog = _policies(deployment)[f"{names.worker_fleet}-backlog"]
    assert backlog["TargetTrackingConfiguration"]["TargetValue"] == 200.0

    reshaped = deploy(
        "up", "--stack", stack_name, "--worker-hosts", "0..4", "--worker-idle-minutes", "20",
        "--worker-latency-seconds", "30", "--no-wait",
    )  # fmt: skip
    changed = {(a, r) for a, r, _ in _fleet_rows(reshaped.stdout, deploy) if a != "ok"}
    assert changed == {("update", "group"), ("update", "policy"), ("update", "alarm")}
    group = fleet.find_group(deployment)
    assert (group["MinSize"], group["MaxSize"]) == (0, 4)
    assert "MixedInstancesPolicy" in group, "Spot is kept when left out"
    policies = _policies(deployment)
    assert policies[f"{names.worker_fleet}-idle"]["StepAdjustments"][0]["ScalingAdjustment"] == 0
    assert policies[f"{names.worker_fleet}-backlog"]["TargetTrackingConfiguration"]["TargetValue"] == 600.0
    assert fleet.find_alarms(deployment)[f"{names.worker_fleet}-idle"]["EvaluationPeriods"] == 20
    # The frontend admits up to MAX hosts' target backlog (4 x 600), or target tracking could never
    # ask for them: the web host rolls out with that limit. 1..2 hosts of 200 stayed under the default.
    assert tag_dict(instance.the_instance(deployment)["Tags"])[instance.MAX_BACKLOG_TAG] == "2400"
    assert "roll out backlog limit 2400" in reshaped.stdout
    kept = deploy("up", "--stack", stack_name, "--no-wait")
    assert {action for action, _, _ in deploy.changes(kept.stdout)} == {"ok"}

    dropped = deploy("up", "--stack", stack_name, "--no-worker-hosts", "--no-wait")
    assert {a for a, _, _ in _fleet_rows(dropped.stdout, deploy)} == {"delete"}
    assert fleet.leftovers(deployment) == []
    assert fleet.hosts(deployment) == []
    assert [found["InstanceId"] for found in instance.stack_instances(deployment)] == [web["InstanceId"]]
    assert tag_dict(instance.the_instance(deployment)["Tags"])[instance.MAX_BACKLOG_TAG] == "", "the default"
    assert (
        "web host only (scripts/deploy up --worker-hosts MIN..MAX)"
        in deploy("status", "--stack", stack_name).stdout
    )
    after = deploy("up", "--stack", stack_name, "--no-wait")
    assert {action for action, _, _ in deploy.changes(after.stdout)} == {"ok"}
    assert _fleet_rows(after.stdout, deploy) == [], "no fleet, no row"


def test_fleet_options_are_checked_before_anything_changes(deploy, inspect, stack_name) -> None:
    for hosts, message in (
        ("3..1", "MIN..MAX with 0 <= MIN <= MAX"),
        ("0..0", "1 <= MAX <= 20"),
        ("1-3", "e.g. 0..4"),
    ):
        refused = deploy("plan", "--stack", stack_name, "--worker-hosts", hosts, ok=False)
        assert refused.returncode == 2
        assert message in refused.stderr
    alone = deploy("plan", "--stack", stack_name, "--spot", ok=False)
    assert alone.returncode == 1
    assert "--spot shape the worker fleet: give --worker-hosts MIN..MAX too" in alone.stderr
    small = deploy(
        "up", "--stack", stack_name, "--worker-hosts", "0..2", "--worker-instance-type", "t3.micro", ok=False
    )
    assert small.returncode == 1
    assert "a t3.micro has 1024 MiB of memory" in small.stderr
    assert stack.leftovers(inspect(stack_name)) == [], "refused before any change"
