"""scripts/deploy against an embedded moto server: what `up` makes, that a second `up` changes
nothing, that a code change rolls out to the same instance, and that `down` removes the stack and
nothing else. Always --no-wait: an emulator's public addresses belong to someone else."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest

from harness.backend import REGION
from harness.services import ROOT
from qcompute import accounts, iam
from qcompute.accounts import AccountStore
from qcompute.deploy import bundle, infra, instance, stack
from qcompute.deploy.infra import tag_dict
from qcompute.names import STACK_TAG

HTTP_CIDR = "203.0.113.0/24"  # TEST-NET-3: documentation only


def _only_instance(deployment) -> dict:
    (found,) = instance.stack_instances(deployment)
    return found


def _all_instances(deployment) -> list[dict]:
    states = [*instance.LIVE_STATES, "shutting-down", "terminated"]
    return instance.stack_instances(deployment, states)


def _ingress(deployment, group_id: str) -> list[dict]:
    (group,) = deployment.ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    return group["IpPermissions"]


def _inline_policy(deployment) -> dict:
    names = deployment.names
    return deployment.iam.get_role_policy(RoleName=names.instance_role, PolicyName=iam.INSTANCE_POLICY_NAME)[
        "PolicyDocument"
    ]


def test_up_makes_the_stack_as_defined_and_a_second_up_changes_nothing(deploy, inspect, stack_name) -> None:
    planned = deploy("plan", "--stack", stack_name, "--http-cidr", HTTP_CIDR)
    assert {action for action, _, _ in deploy.changes(planned.stdout)} == {"create"}
    assert len(deploy.changes(planned.stdout)) == 19
    deployment = inspect(stack_name)
    names = deployment.names
    assert stack.leftovers(deployment) == [], "a plan changes nothing"

    first = deploy("up", "--stack", stack_name, "--http-cidr", HTTP_CIDR, "--no-wait")
    assert [action for action, _, _ in deploy.changes(first.stdout)] == ["create"] * 19
    assert "not waiting for http://" in first.stdout

    server = _only_instance(deployment)
    assert f"URL: http://{server['PublicIpAddress']}/" in first.stdout
    assert server["State"]["Name"] == "running"
    assert server["InstanceType"] == instance.DEFAULT_INSTANCE_TYPE
    assert server["MetadataOptions"]["HttpTokens"] == "required"
    assert server["MetadataOptions"]["HttpPutResponseHopLimit"] == 2
    assert server["IamInstanceProfile"]["Arn"].endswith(f":instance-profile/{names.instance_profile}")
    assert server.get("KeyName") is None, "no key pair: Session Manager instead of SSH"
    ami = deployment.ssm.get_parameter(Name=instance.AMI_PARAMETER.format(arch="x86_64"))["Parameter"]
    assert server["ImageId"] == ami["Value"]
    tags = tag_dict(server["Tags"])
    assert tags[STACK_TAG] == stack_name
    assert tags["Name"] == stack_name
    assert tags[instance.BUNDLE_TAG] == bundle.build(ROOT).digest
    assert tags[instance.WORKERS_TAG] == "1"
    volumes = deployment.ec2.describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [server["InstanceId"]]}]
    )["Volumes"]
    assert [(volume["Encrypted"], tag_dict(volume.get("Tags")).get(STACK_TAG)) for volume in volumes] == [
        (True, stack_name)
    ]

    (group,) = server["SecurityGroups"]
    assert group["GroupName"] == names.security_group
    rules = _ingress(deployment, group["GroupId"])
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in rules] == [("tcp", 80, 80)]
    assert [ip["CidrIp"] for ip in rules[0]["IpRanges"]] == [HTTP_CIDR]
    assert [rules[0][other] for other in ("Ipv6Ranges", "UserIdGroupPairs", "PrefixListIds")] == [[], [], []]

    role = deployment.iam.get_role(RoleName=names.instance_role)["Role"]
    assert role["AssumeRolePolicyDocument"] == iam.ec2_trust_policy()
    assert tag_dict(role["Tags"]) == {STACK_TAG: stack_name}
    assert _inline_policy(deployment) == iam.instance_policy(names)
    attached = deployment.iam.list_attached_role_policies(RoleName=names.instance_role)["AttachedPolicies"]
    assert [policy["PolicyArn"] for policy in attached] == [iam.SESSION_MANAGER_POLICY_ARN]
    profile = deployment.iam.get_instance_profile(InstanceProfileName=names.instance_profile)[
        "InstanceProfile"
    ]
    assert [r["RoleName"] for r in profile["Roles"]] == [names.instance_role]
    assert tag_dict(profile["Tags"]) == {STACK_TAG: stack_name}

    secret = deployment.ssm.get_parameter(Name=names.secret_key_parameter, WithDecryption=True)["Parameter"]
    assert secret["Type"] == "SecureString"
    assert len(secret["Value"]) == 64
    user_data = base64.b64decode(
        deployment.ec2.describe_instance_attribute(InstanceId=server["InstanceId"], Attribute="userData")[
            "UserData"
        ]["Value"]
    ).decode()
    assert names.secret_key_parameter in user_data
    assert secret["Value"] not in user_data, "the secret is read at boot, never written into user data"
    assert secret["Value"] not in first.stdout + first.stderr, "the secret is never printed"
    stored = deployment.clients.s3.get_object(Bucket=names.log_bucket, Key=names.bundle_key)
    assert secret["Value"].encode() not in stored["Body"].read()
    block = deployment.clients.s3.get_public_access_block(Bucket=names.log_bucket)
    assert all(block["PublicAccessBlockConfiguration"].values())

    again = deploy("up", "--stack", stack_name, "--no-wait")
    assert {action for action, _, _ in deploy.changes(again.stdout)} == {"ok"}
    assert len(deploy.changes(again.stdout)) == 19
    assert [found["InstanceId"] for found in _all_instances(deployment)] == [server["InstanceId"]]
    assert _ingress(deployment, group["GroupId"]) == rules, "the CIDR given first is kept"
    assert _inline_policy(deployment) == iam.instance_policy(names)
    assert deployment.ssm.list_commands(InstanceId=server["InstanceId"])["Commands"] == []

    shown = deploy("status", "--stack", stack_name).stdout
    assert f"{server['InstanceId']}" in shown
    assert "running, t3.small" in shown
    assert f"http://{server['PublicIpAddress']}/" in shown
    assert f"{names.requests_queue}" in shown
    assert "0 visible, 0 in flight, 0 delayed" in shown
    assert "missing" not in shown


def _copy_of_the_source(destination: Path) -> Path:
    for name in bundle.bundle_files(ROOT):
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    return destination


def test_a_code_change_rolls_out_to_the_same_instance(deploy, inspect, stack_name, tmp_path) -> None:
    source = _copy_of_the_source(tmp_path / "source")
    deploy("up", "--stack", stack_name, "--source", str(source), "--no-wait")
    deployment = inspect(stack_name)
    server = _only_instance(deployment)

    with (source / "services/worker/compute.py").open("a") as changed:
        changed.write("\n# a change\n")
    new_digest = bundle.build(source).digest
    planned = deploy.changes(deploy("plan", "--stack", stack_name, "--source", str(source)).stdout)
    assert [(a, r) for a, r, _ in planned if a != "ok"] == [("update", "bundle"), ("update", "instance")]
    assert f"roll out bundle {new_digest[:12]}" in planned[-1][2]
    assert deployment.ssm.list_commands(InstanceId=server["InstanceId"])["Commands"] == []

    rolled = deploy("up", "--stack", stack_name, "--source", str(source), "--no-wait")
    assert "the rollout on the instance (scripts/rollout): success" in rolled.stdout
    assert [found["InstanceId"] for found in _all_instances(deployment)] == [server["InstanceId"]]
    (command,) = deployment.ssm.list_commands(InstanceId=server["InstanceId"])["Commands"]
    assert command["DocumentName"] == "AWS-RunShellScript"
    script = "\n".join(command["Parameters"]["commands"])
    assert "aws s3 cp" in script
    assert "./scripts/rollout" in script
    assert script.rstrip().endswith("/opt/qcompute/release.sh --workers 1 --access accounts")
    tags = tag_dict(_only_instance(deployment)["Tags"])
    assert tags[instance.BUNDLE_TAG] == new_digest
    assert _only_instance(deployment)["PublicIpAddress"] == server["PublicIpAddress"], "same URL"

    # Two workers' memory limits, the proxy's and the rest do not fit a t3.small's 2 GiB: refused
    # before anything changes.
    crowded = deploy("up", "--stack", stack_name, "--source", str(source), "--workers", "2", ok=False)
    assert crowded.returncode != 0
    assert "a t3.small has 2048 MiB of memory; 2 worker(s)" in crowded.stderr
    assert len(deployment.ssm.list_commands(InstanceId=server["InstanceId"])["Commands"]) == 1

    more = deploy("up", "--stack", stack_name, "--source", str(source), "--access", "open", "--no-wait")
    assert ("update", "instance") in [(a, r) for a, r, _ in deploy.changes(more.stdout)]
    assert len(deployment.ssm.list_commands(InstanceId=server["InstanceId"])["Commands"]) == 2
    assert tag_dict(_only_instance(deployment)["Tags"])[instance.ACCESS_TAG] == "open"

    settled = deploy("up", "--stack", stack_name, "--source", str(source), "--no-wait")
    assert {action for action, _, _ in deploy.changes(settled.stdout)} == {"ok"}
    assert len(deployment.ssm.list_commands(InstanceId=server["InstanceId"])["Commands"]) == 2


def test_rollback_returns_to_the_release_before_the_last_rollout(
    deploy, inspect, stack_name, tmp_path
) -> None:
    source = _copy_of_the_source(tmp_path / "source")
    deploy("up", "--stack", stack_name, "--source", str(source), "--no-wait")
    deployment = inspect(stack_name)
    server = _only_instance(deployment)
    first = bundle.build(source).digest
    refused = deploy("rollback", "--stack", stack_name, ok=False)
    assert refused.returncode == 1
    assert "the instance has no previous release to return to" in refused.stderr
    assert deployment.ssm.list_commands(InstanceId=server["InstanceId"])["Commands"] == []

    with (source / "services/worker/compute.py").open("a") as changed:
        changed.write("\n# a change\n")
    second = bundle.build(source).digest
    deploy("up", "--stack", stack_name, "--source", str(source), "--no-wait", "--access", "open")
    tags = tag_dict(_only_instance(deployment)["Tags"])
    assert (tags[instance.BUNDLE_TAG], tags[instance.BUNDLE_TAG + instance.PREVIOUS]) == (second, first)
    assert (tags[instance.ACCESS_TAG], tags[instance.ACCESS_TAG + instance.PREVIOUS]) == ("open", "accounts")

    back = deploy("rollback", "--stack", stack_name)
    assert f"rolled back from bundle {second[:12]} to {first[:12]}" in back.stdout
    assert "the rollback on the instance: success" in back.stdout
    sent = deployment.ssm.list_commands(InstanceId=server["InstanceId"])["Commands"]
    assert len(sent) == 2
    (rolled_back,) = [command for command in sent if "roll back" in command["Comment"]]
    assert rolled_back["Parameters"]["commands"] == ["set -eu", "/opt/qcompute/release.sh --rollback"]
    tags = tag_dict(_only_instance(deployment)["Tags"])
    assert (tags[instance.BUNDLE_TAG], tags[instance.BUNDLE_TAG + instance.PREVIOUS]) == (first, second)
    assert tags[instance.ACCESS_TAG] == "accounts", "the previous release's settings came back with it"
    assert bundle.uploaded_digest(deployment) == second, "nothing rebuilt or uploaded"

    # `up` makes the instance run your code again: it rolls the newer bundle out once more.
    planned = deploy.changes(deploy("plan", "--stack", stack_name, "--source", str(source)).stdout)
    assert [(a, r) for a, r, _ in planned if a != "ok"] == [("update", "instance")]
    assert f"roll out bundle {second[:12]}" in planned[-1][2]


def test_up_repairs_what_was_changed_by_hand(deploy, inspect, stack_name) -> None:
    deploy("up", "--stack", stack_name, "--no-wait")
    deployment = inspect(stack_name)
    server = _only_instance(deployment)
    (group,) = server["SecurityGroups"]
    ssh = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    deployment.ec2.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[ssh])
    deployment.ec2.modify_instance_metadata_options(InstanceId=server["InstanceId"], HttpTokens="optional")
    deployment.ec2.stop_instances(InstanceIds=[server["InstanceId"]])

    repaired = deploy.changes(deploy("up", "--stack", stack_name, "--no-wait").stdout)
    assert [(a, r) for a, r, _ in repaired if a != "ok"] == [
        ("update", "security group"),
        ("update", "instance"),
    ]
    assert "start, IMDSv2 and hop limit 2" in repaired[-1][2]
    rules = _ingress(deployment, group["GroupId"])
    assert [(r["FromPort"], [ip["CidrIp"] for ip in r["IpRanges"]]) for r in rules] == [(80, ["0.0.0.0/0"])]
    again = _only_instance(deployment)
    assert again["InstanceId"] == server["InstanceId"]
    assert again["State"]["Name"] == "running"
    assert again["MetadataOptions"]["HttpTokens"] == "required"


def test_down_removes_the_stack_and_leaves_its_neighbour_alone(deploy, inspect, stack_name) -> None:
    neighbour = f"{stack_name}-2"
    deploy("up", "--stack", stack_name, "--no-wait")
    deploy("up", "--stack", neighbour, "--no-wait")
    ours, theirs = inspect(stack_name), inspect(neighbour)
    our_server, their_server = _only_instance(ours), _only_instance(theirs)

    removed = deploy("down", "--stack", stack_name, "--yes")
    assert {action for action, _, _ in deploy.changes(removed.stdout)} == {"delete"}
    assert f"stack {stack_name!r} is removed from {REGION}: nothing of it remains" in removed.stdout
    assert stack.leftovers(ours) == []
    assert [found["State"]["Name"] for found in _all_instances(ours)] == ["terminated"]
    assert _all_instances(ours)[0]["InstanceId"] == our_server["InstanceId"]
    queues = ours.clients.sqs.list_queues(QueueNamePrefix=stack_name).get("QueueUrls", [])
    assert queues
    assert all(url.rsplit("/", 1)[-1].startswith(f"{neighbour}-") for url in queues)
    buckets = [b["Name"] for b in ours.clients.s3.list_buckets()["Buckets"]]
    assert ours.names.log_bucket not in buckets
    assert theirs.names.log_bucket in buckets

    again = deploy("down", "--stack", stack_name, "--yes")
    assert deploy.changes(again.stdout) == []
    assert "nothing to do" in again.stdout

    assert _only_instance(theirs)["InstanceId"] == their_server["InstanceId"]
    assert _only_instance(theirs)["State"]["Name"] == "running"
    intact = deploy("plan", "--stack", neighbour)
    assert {action for action, _, _ in deploy.changes(intact.stdout)} == {"ok"}, intact.stdout


def test_down_asks_first_and_removes_nothing_without_the_stack_name(deploy, inspect, stack_name) -> None:
    deploy("up", "--stack", stack_name, "--no-wait")
    refused = deploy("down", "--stack", stack_name, ok=False)
    assert refused.returncode == 1
    assert "nothing removed" in refused.stdout
    assert _only_instance(inspect(stack_name))["State"]["Name"] == "running"


DOMAIN = "qcompute.example.org"
EMAIL = "ops@example.org"


def _web_rules(deployment, group_id: str) -> set[tuple[int, str]]:
    """(port, CIDR) of every inbound rule, each of which must be one TCP port from IPv4 ranges only."""
    rules = _ingress(deployment, group_id)
    for rule in rules:
        assert (rule["IpProtocol"], rule["FromPort"]) == ("tcp", rule["ToPort"]), rule
        assert [rule[other] for other in ("Ipv6Ranges", "UserIdGroupPairs", "PrefixListIds")] == [[], [], []]
    return {(rule["FromPort"], ip["CidrIp"]) for rule in rules for ip in rule["IpRanges"]}


def _user_data(deployment, instance_id: str) -> str:
    found = deployment.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    return base64.b64decode(found["UserData"]["Value"]).decode()


def _commands(deployment, instance_id: str) -> list[list[str]]:
    """Every Run Command sent to the instance, oldest first: its shell lines."""
    listed = deployment.ssm.list_commands(InstanceId=instance_id)["Commands"]
    return [
        command["Parameters"]["commands"] for command in sorted(listed, key=lambda c: c["RequestedDateTime"])
    ]


def test_a_domain_opens_443_for_https_and_dropping_it_closes_443(deploy, inspect, stack_name) -> None:
    narrow = deploy("plan", "--stack", stack_name, "--domain", DOMAIN, "--http-cidr", HTTP_CIDR)
    assert f"warning: --http-cidr {HTTP_CIDR} keeps the certificate authority out" in narrow.stdout
    planned = deploy.changes(deploy("plan", "--stack", stack_name, "--domain", DOMAIN).stdout)
    assert "inbound tcp/80, tcp/443 from 0.0.0.0/0 only" in {r: d for _, r, d in planned}["security group"]
    assert "warning" not in deploy("plan", "--stack", stack_name, "--domain", DOMAIN).stdout
    # The proxy's memory limit counts, domain or not: two workers and it do not fit a t3.small.
    crowded = deploy("plan", "--stack", stack_name, "--domain", DOMAIN, "--workers", "2", ok=False)
    assert "2 worker(s), the frontend, the logger, the proxy" in crowded.stderr
    assert deploy("plan", "--stack", stack_name, "--no-domain", "--workers", "2", ok=False).returncode == 1

    first = deploy("up", "--stack", stack_name, "--domain", DOMAIN.upper(), "--email", EMAIL, "--no-wait")
    deployment = inspect(stack_name)
    server = _only_instance(deployment)
    address = server["PublicIpAddress"]
    (group,) = server["SecurityGroups"]
    assert _web_rules(deployment, group["GroupId"]) == {(80, "0.0.0.0/0"), (443, "0.0.0.0/0")}
    assert f"\n  {DOMAIN}  A  {address}\n" in first.stdout, "the DNS record to create"
    assert f"not waiting for https://{DOMAIN}/ (--no-wait)" in first.stdout
    assert first.stdout.rstrip().endswith(f"URL: https://{DOMAIN}/")
    assert "not encrypted" not in first.stdout
    tags = tag_dict(server["Tags"])
    assert (tags[instance.DOMAIN_TAG], tags[instance.EMAIL_TAG], tags[instance.ACCESS_TAG]) == (
        DOMAIN,
        EMAIL,
        "accounts",
    )
    assert (
        _user_data(deployment, server["InstanceId"])
        .rstrip()
        .endswith(f"release.sh --workers 1 --access accounts --domain {DOMAIN} --email {EMAIL}")
    )

    # Left out, the domain is kept: nothing changes.
    kept = deploy("up", "--stack", stack_name, "--no-wait")
    assert {action for action, _, _ in deploy.changes(kept.stdout)} == {"ok"}
    assert f"URL: https://{DOMAIN}/" in kept.stdout
    shown = deploy("status", "--stack", stack_name).stdout
    assert f"https://{DOMAIN}/" in shown
    assert f"{DOMAIN} A {address}, ACME e-mail {EMAIL}" in shown
    assert "inbound tcp/80, tcp/443 from 0.0.0.0/0 only" in shown

    dropped = deploy("up", "--stack", stack_name, "--no-domain", "--no-wait")
    changed = [(a, r, d) for a, r, d in deploy.changes(dropped.stdout) if a != "ok"]
    assert [(a, r) for a, r, _ in changed] == [("update", "security group"), ("update", "instance")]
    assert "1 other rule(s) removed" in changed[0][2]
    assert "roll out domain none, ACME e-mail none" in changed[1][2]
    assert _web_rules(deployment, group["GroupId"]) == {(80, "0.0.0.0/0")}, "443 is revoked"
    assert (
        _commands(deployment, server["InstanceId"])[-1][-1]
        == "/opt/qcompute/release.sh --workers 1 --access accounts"
    )
    assert f"traffic to http://{address}/ is not encrypted" in dropped.stdout
    assert "--domain NAME" in dropped.stdout
    assert dropped.stdout.rstrip().endswith(f"URL: http://{address}/")
    assert "plain HTTP, not encrypted" in deploy("status", "--stack", stack_name).stdout

    back = deploy("up", "--stack", stack_name, "--domain", DOMAIN, "--no-wait")
    assert _web_rules(deployment, group["GroupId"]) == {(80, "0.0.0.0/0"), (443, "0.0.0.0/0")}
    # The e-mail went with the domain it was for.
    assert _commands(deployment, server["InstanceId"])[-1][-1].endswith(
        f"--access accounts --domain {DOMAIN}"
    )
    assert f"URL: https://{DOMAIN}/" in back.stdout
    assert [found["InstanceId"] for found in _all_instances(deployment)] == [server["InstanceId"]], (
        "same address"
    )

    refused = deploy("up", "--stack", stack_name, "--no-domain", "--email", EMAIL, "--no-wait", ok=False)
    assert refused.returncode == 1
    assert "--email is the contact for the certificate of --domain" in refused.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--domain", "https://qcompute.example.org"), "without https://"),
        (("--domain", "203.0.113.7"), "an IP address cannot get a certificate"),
        (("--domain", DOMAIN, "--email", "ops"), "not an e-mail address"),
        (("--domain", DOMAIN, "--no-domain"), "not allowed with argument"),
        (("--access", "everyone"), "invalid choice: 'everyone'"),
    ],
)
def test_bad_settings_are_usage_errors(deploy, options: tuple[str, ...], message: str) -> None:
    refused = deploy("plan", "--stack", "dsettings", *options, ok=False)
    assert refused.returncode == 2
    assert message in refused.stderr


def test_the_access_mode_is_kept_and_no_secret_travels_to_the_instance(
    deploy, users, inspect, stack_name
) -> None:
    first = deploy("up", "--stack", stack_name, "--no-wait")
    deployment = inspect(stack_name)
    names = deployment.names
    server = _only_instance(deployment)
    assert tag_dict(server["Tags"])[instance.ACCESS_TAG] == "accounts", "the default for a deployment"
    assert (
        "access: accounts, no account yet: create the first admin with "
        f"`scripts/users add NAME --admin --stack {stack_name} --region {REGION}`" in first.stdout
    )
    password = users("add", "root", "--admin", "--stack", stack_name).stdout.strip()
    token = users("token", "add", "root", "--stack", stack_name).stdout.strip()
    again = deploy("up", "--stack", stack_name, "--no-wait")
    assert {action for action, _, _ in deploy.changes(again.stdout)} == {"ok"}
    assert "access: accounts (1 account(s), 1 admin(s)" in again.stdout
    shown = deploy("status", "--stack", stack_name).stdout
    assert "1 account(s), 1 admin(s)" in shown
    assert "sign-in or an API token required" in shown

    opened = deploy("up", "--stack", stack_name, "--access", "open", "--no-wait")
    assert "roll out access open" in {r: d for _, r, d in deploy.changes(opened.stdout)}["instance"]
    assert "access: open: anyone who reaches the page" in opened.stdout
    kept = deploy("up", "--stack", stack_name, "--no-wait")
    assert {action for action, _, _ in deploy.changes(kept.stdout)} == {"ok"}
    assert tag_dict(_only_instance(deployment)["Tags"])[instance.ACCESS_TAG] == "open"
    deploy("up", "--stack", stack_name, "--access", "accounts", "--domain", DOMAIN, "--no-wait")

    # Whatever reaches the instance (user data, each Run Command) or the terminal holds no secret.
    commands = _commands(deployment, server["InstanceId"])
    assert [lines[-1].split(" --access ")[1] for lines in commands] == ["open", f"accounts --domain {DOMAIN}"]
    travelled = "\n".join(
        [_user_data(deployment, server["InstanceId"]), *("\n".join(lines) for lines in commands)]
        + [result.stdout + result.stderr for result in (first, again, opened, kept)]
    )
    secret_key = deployment.ssm.get_parameter(Name=names.secret_key_parameter, WithDecryption=True)
    account = AccountStore(deployment.ssm, names).get("root")
    for secret in (
        secret_key["Parameter"]["Value"],
        password,
        token,
        accounts.TOKEN.match(token).group(2),
        account.password,
        account.tokens[0].sha256,
    ):
        assert secret not in travelled


def test_down_removes_the_accounts_and_leaves_a_parameter_not_tagged_as_the_stacks(
    deploy, users, inspect, stack_name
) -> None:
    deploy("up", "--stack", stack_name, "--no-wait")
    deployment = inspect(stack_name)
    path = deployment.names.accounts_path
    for name in ("alice", "bob"):
        users("add", name, "--stack", stack_name)
    stored = deployment.ssm.get_parameter(Name=f"{path}/alice")["Parameter"]
    assert stored["Type"] == "SecureString"
    # Someone else's parameter under the same path: not the stack's to delete.
    deployment.ssm.put_parameter(Name=f"{path}/intruder", Value="{}", Type="SecureString")
    try:
        assert sorted(infra.find_accounts(deployment)) == [
            f"{path}/{n}" for n in ("alice", "bob", "intruder")
        ]
        assert f"account {path}/alice" in stack.leftovers(deployment)

        removed = deploy("down", "--stack", stack_name, "--yes")
        rows = deploy.changes(removed.stdout)
        assert ("delete", "account", f"{path}/alice") in rows
        assert ("delete", "account", f"{path}/bob") in rows
        assert ("skip", "account", f"{path}/intruder (not tagged with this stack)") in rows
        assert list(infra.find_accounts(deployment)) == [f"{path}/intruder"]
        assert stack.leftovers(deployment) == []
    finally:
        deployment.ssm.delete_parameter(Name=f"{path}/intruder")
