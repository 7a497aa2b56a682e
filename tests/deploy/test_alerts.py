"""Alerts: `up --alert-email` makes the SNS topic, its e-mail subscription, the CloudWatch alarms
(right metrics, queues, thresholds, actions, tags) and the metric filter counting the frontend's
stalled-replies lines; a second `up` changes nothing; the settings are kept; `--no-alert-email` and
`down` remove all of it. Against moto."""

from __future__ import annotations

from qcompute.logs import REPLIES_STALLED
from qcompute.names import STACK_TAG

ADDR = "ops@example.org"
KEYS = ("requests-dlq-messages", "logs-dlq-messages", "requests-oldest", "replies-stalled", "instance-status")


def _alarms(deployment) -> dict[str, dict]:
    names = [deployment.names.alarm(key) for key in KEYS]
    found = deployment.cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]
    return {alarm["AlarmName"][len(deployment.names.stack) + 1 :]: alarm for alarm in found}


def _metric_filters(deployment) -> list[dict]:
    """The stack's metric filters on the frontend's log group (moto keeps them after the group goes)."""
    group = deployment.names.log_group("frontend")
    return deployment.logs.describe_metric_filters(logGroupName=group)["metricFilters"]


def _topics(deployment) -> list[str]:
    return [topic["TopicArn"] for topic in deployment.clients.sns.list_topics()["Topics"]]


def _rows(deploy, output: str, *resources: str) -> list[tuple[str, str, str]]:
    """The rows of these resources that belong to alerting (the results topic has a subscription too)."""
    return [
        row
        for row in deploy.changes(output)
        if row[1] in resources and (row[1] in {"alarm", "metric filter"} or "-alerts" in row[2].split(" ")[0])
    ]


def test_up_with_an_alert_email_makes_the_topic_subscription_and_alarms(deploy, inspect, stack_name) -> None:
    plain = deploy("plan", "--stack", stack_name).stdout
    assert not _rows(deploy, plain, "alarm", "subscription", "metric filter"), "no alerts unless asked for"
    # Planned before the frontend's log group exists: the filter is to be made (after the group).
    planned = deploy("plan", "--stack", stack_name, "--alert-email", ADDR).stdout
    rows = _rows(deploy, planned, "topic", "subscription", "alarm", "metric filter")
    assert ("create", "topic", f"{stack_name}-alerts (the alarms notify it)") in rows
    assert [row[0] for row in rows if row[1] == "subscription"] == ["create"]
    group = f"/qcompute/{stack_name}/frontend"
    assert [row for row in rows if row[1] == "metric filter"] == [
        (
            "create",
            "metric filter",
            f"{stack_name}-replies-stalled (counts {REPLIES_STALLED} lines in {group} as "
            f"QCompute/{stack_name} RepliesStalled)",
        )
    ]
    assert f"{stack_name}-alerts -> {ADDR} (pending until {ADDR} confirms" in planned
    assert [row[2].split(" ")[0] for row in rows if row[1] == "alarm"] == [f"{stack_name}-{k}" for k in KEYS]
    assert {row[0] for row in rows if row[1] == "alarm"} == {"create"}

    made = deploy("up", "--stack", stack_name, "--no-wait", "--alert-email", ADDR).stdout
    assert "pending until ops@example.org confirms" in made
    deployment = inspect(stack_name)
    names = deployment.names
    topic = names.alerts_topic_arn
    assert topic in _topics(deployment)
    tags = deployment.clients.sns.list_tags_for_resource(ResourceArn=topic)["Tags"]
    assert {"Key": STACK_TAG, "Value": stack_name} in tags
    subscriptions = deployment.clients.sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("email", ADDR)]

    alarms = _alarms(deployment)
    assert sorted(alarms) == sorted(KEYS)
    expected = {
        "requests-dlq-messages": (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            "QueueName",
            names.requests_dlq,
            0,
        ),
        "logs-dlq-messages": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", names.log_dlq, 0),
        "requests-oldest": (
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            "QueueName",
            names.requests_queue,
            300,
        ),
        "instance-status": ("AWS/EC2", "StatusCheckFailed", "InstanceId", None, 1),
    }
    for key, (namespace, metric, dimension, value, threshold) in expected.items():
        alarm = alarms[key]
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (namespace, metric, "Maximum")
        ((found,),) = [alarm["Dimensions"]]
        assert found["Name"] == dimension
        if value:
            assert found["Value"] == value
        assert alarm["Threshold"] == threshold
        assert alarm["Period"] == 60
        assert alarm["AlarmActions"] == [topic]
        assert alarm["OKActions"] == [topic]
        alarm_tags = deployment.cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]
        assert {"Key": STACK_TAG, "Value": stack_name} in alarm_tags
    assert alarms["requests-dlq-messages"]["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarms["requests-dlq-messages"]["TreatMissingData"] == "notBreaching"
    stalled = alarms["replies-stalled"]
    assert (stalled["Namespace"], stalled["MetricName"]) == (f"QCompute/{stack_name}", "RepliesStalled")
    assert stalled.get("Dimensions", []) == []
    assert (stalled["Statistic"], stalled["Period"]) == ("Sum", 60)
    assert (stalled["EvaluationPeriods"], stalled["DatapointsToAlarm"]) == (2, 1)
    assert (stalled["Threshold"], stalled["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert stalled["TreatMissingData"] == "notBreaching"
    assert REPLIES_STALLED in stalled["AlarmDescription"]
    assert (stalled["AlarmActions"], stalled["OKActions"]) == ([topic], [topic])
    stalled_tags = deployment.cloudwatch.list_tags_for_resource(ResourceARN=stalled["AlarmArn"])["Tags"]
    assert {"Key": STACK_TAG, "Value": stack_name} in stalled_tags
    # Its metric: the frontend's log group's filter counts the lines the frontend logs while stalled.
    (metric_filter,) = _metric_filters(deployment)
    assert metric_filter["filterName"] == f"{stack_name}-replies-stalled"
    assert metric_filter["filterPattern"] == f'{{ $.event = "{REPLIES_STALLED}" }}'
    assert metric_filter["metricTransformations"] == [
        {
            "metricName": "RepliesStalled",
            "metricNamespace": f"QCompute/{stack_name}",
            "metricValue": "1",
            "unit": "Count",
        }
    ]
    status_alarm = alarms["instance-status"]
    assert status_alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert status_alarm["EvaluationPeriods"] == 2
    running = [
        i["InstanceId"]
        for r in deployment.ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] in {"pending", "running"}
    ]
    assert status_alarm["Dimensions"] == [{"Name": "InstanceId", "Value": running[0]}]

    # A second up, naming neither option, keeps them all and changes nothing.
    again = deploy("up", "--stack", stack_name, "--no-wait").stdout
    assert {row[0] for row in deploy.changes(again)} == {"ok"}, again
    assert len(_rows(deploy, again, "alarm")) == 5
    assert [row[0] for row in _rows(deploy, again, "metric filter")] == ["ok"]
    assert len(_metric_filters(deployment)) == 1
    assert len(deployment.clients.sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]) == 1

    # A new age is applied and then kept; the address is not subscribed twice.
    older = deploy(
        "up", "--stack", stack_name, "--no-wait", "--alert-email", ADDR, "--alert-oldest-seconds", "600"
    )
    assert _rows(deploy, older.stdout, "alarm")[2][0] == "update"
    assert {row[0] for row in deploy.changes(older.stdout) if "requests-oldest" not in row[2]} == {"ok"}
    deploy("up", "--stack", stack_name, "--no-wait")
    assert _alarms(deployment)["requests-oldest"]["Threshold"] == 600
    assert len(deployment.clients.sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]) == 1
    status = deploy("status", "--stack", stack_name).stdout
    assert f"{stack_name}-requests-oldest" in status
    shown = [line.split() for line in status.splitlines()]
    (stalled_row,) = [row for row in shown if row[:2] == ["alarm", f"{stack_name}-replies-stalled"]]
    assert stalled_row[-1] in {"OK", "ALARM", "INSUFFICIENT_DATA"}
    assert ["metric", "filter", f"{stack_name}-replies-stalled", "present"] in shown
    # moto confirms e-mail subscriptions at once; AWS leaves them unconfirmed until ADDR clicks.
    assert any(ADDR in line and "confirmed" in line for line in status.splitlines())

    # A new address replaces a confirmed old one.
    moved = deploy("up", "--stack", stack_name, "--no-wait", "--alert-email", "oncall@example.org").stdout
    assert [row[0] for row in _rows(deploy, moved, "subscription")] == ["delete", "create"]
    subscriptions = deployment.clients.sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [s["Endpoint"] for s in subscriptions] == ["oncall@example.org"]

    # --no-alert-email removes every part; plan says so first.
    plan_off = deploy("plan", "--stack", stack_name, "--no-alert-email").stdout
    alerting = [
        row
        for row in deploy.changes(plan_off)
        if f"{stack_name}-alerts" in row[2] or row[1] in {"alarm", "metric filter"}
    ]
    assert len(alerting) == 8
    assert {row[0] for row in alerting} == {"delete"}
    assert ("delete", "metric filter", f"{stack_name}-replies-stalled") in alerting
    deploy("up", "--stack", stack_name, "--no-wait", "--no-alert-email")
    assert _alarms(deployment) == {}
    assert _metric_filters(deployment) == []
    assert deployment.logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"], "the logs stay"
    assert topic not in _topics(deployment)
    quiet = deploy("up", "--stack", stack_name, "--no-wait").stdout
    assert not _rows(deploy, quiet, "alarm", "subscription", "metric filter"), "off is remembered too"


def test_down_removes_the_alarms_and_topic(deploy, inspect, stack_name) -> None:
    deploy("up", "--stack", stack_name, "--no-wait", "--alert-email", ADDR)
    deployment = inspect(stack_name)
    assert len(_alarms(deployment)) == 5
    assert len(_metric_filters(deployment)) == 1
    removed = deploy("down", "--stack", stack_name, "--yes").stdout
    assert [row[0] for row in _rows(deploy, removed, "alarm")] == ["delete"] * 5
    assert [row[0] for row in _rows(deploy, removed, "metric filter")] == ["delete"]
    assert _alarms(deployment) == {}
    assert _metric_filters(deployment) == []
    assert deployment.names.alerts_topic_arn not in _topics(deployment)


def test_an_age_without_an_address_is_refused(deploy, stack_name) -> None:
    refused = deploy("plan", "--stack", stack_name, "--alert-oldest-seconds", "600", ok=False)
    assert refused.returncode == 1
    assert "give --alert-email ADDR" in refused.stderr
    assert deploy("plan", "--stack", stack_name, "--alert-oldest-seconds", "5", ok=False).returncode == 2


def test_a_replaced_instance_moves_the_status_alarm_along(deploy, inspect, stack_name) -> None:
    deploy("up", "--stack", stack_name, "--no-wait", "--alert-email", ADDR)
    deployment = inspect(stack_name)
    (old,) = _alarms(deployment)["instance-status"]["Dimensions"]
    deployment.ec2.terminate_instances(InstanceIds=[old["Value"]])
    replaced = deploy("up", "--stack", stack_name, "--no-wait").stdout
    assert [row[0] for row in _rows(deploy, replaced, "alarm")] == ["ok", "ok", "ok", "ok", "update"]
    (new,) = _alarms(deployment)["instance-status"]["Dimensions"]
    assert new["Value"] != old["Value"]
    assert new["Value"] in replaced
