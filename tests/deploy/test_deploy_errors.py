"""The usual failures end in one readable line that says what to do, exit non-zero, and change nothing."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from qcompute import iam
from qcompute.deploy import stack
from qcompute.deploy.__main__ import main
from qcompute.deploy.session import explain


def _one_line_error(result, *words: str) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    for word in words:
        assert word in result.stderr
    return result.stderr


def test_no_credentials(deploy) -> None:
    refused = deploy(
        "up",
        "--stack",
        "dnocreds",
        "--no-wait",
        ok=False,
        unset=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    )
    _one_line_error(refused, "no AWS credentials found", "aws configure")


def test_an_unknown_region(deploy) -> None:
    refused = deploy("plan", "--stack", "dregion", "--region", "mars-north-1", ok=False)
    _one_line_error(refused, "unknown region 'mars-north-1'", "--region")


def test_a_bad_stack_name_is_a_usage_error(deploy) -> None:
    refused = deploy("up", "--stack", "Bad_Name", "--no-wait", ok=False)
    assert refused.returncode == 2
    assert "invalid stack name" in refused.stderr


def test_no_default_vpc(deploy, inspect, stack_name) -> None:
    region = "eu-north-1"  # only this test uses it: the other tests keep their default VPC
    deployment = inspect(stack_name, region)
    ec2 = deployment.ec2
    (vpc,) = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    for subnet in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]:
        ec2.delete_subnet(SubnetId=subnet["SubnetId"])
    gateways = ec2.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [vpc["VpcId"]]}]
    )
    for gateway in gateways["InternetGateways"]:
        ec2.detach_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"], VpcId=vpc["VpcId"])
        ec2.delete_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"])
    ec2.delete_vpc(VpcId=vpc["VpcId"])
    try:
        refused = deploy("up", "--stack", stack_name, "--region", region, "--no-wait", ok=False)
        _one_line_error(
            refused, f"no default VPC in {region}", f"aws ec2 create-default-vpc --region {region}"
        )
        assert stack.leftovers(deployment) == [], "nothing was created"
    finally:
        ec2.create_default_vpc()
    deploy("up", "--stack", stack_name, "--region", region, "--no-wait")
    deploy("down", "--stack", stack_name, "--region", region, "--yes")


def test_names_taken_by_something_else_are_refused_and_left_alone(deploy, inspect, stack_name) -> None:
    deployment = inspect(stack_name)
    names = deployment.names
    # Same names, but not tagged as this stack's: someone else's.
    deployment.iam.create_role(
        RoleName=names.instance_role, AssumeRolePolicyDocument=json.dumps(iam.ec2_trust_policy())
    )
    deployment.clients.s3.create_bucket(Bucket=names.log_bucket)
    try:
        refused = deploy("up", "--stack", stack_name, "--no-wait", ok=False)
        _one_line_error(
            refused,
            f"IAM role {names.instance_role}",
            f"bucket {names.log_bucket}",
            "choose another --stack name",
        )
        assert deployment.clients.sqs.list_queues(QueueNamePrefix=stack_name).get("QueueUrls", []) == []
        assert deployment.iam.list_role_policies(RoleName=names.instance_role)["PolicyNames"] == []

        deployment.clients.s3.delete_bucket(Bucket=names.log_bucket)
        removed = deploy("down", "--stack", stack_name, "--yes")
        assert ("skip", "role", f"{names.instance_role} (not tagged with this stack)") in deploy.changes(
            removed.stdout
        )
        assert (
            deployment.iam.get_role(RoleName=names.instance_role)["Role"]["RoleName"] == names.instance_role
        )
    finally:
        deployment.iam.delete_role(RoleName=names.instance_role)


def test_a_quota_hit_exits_with_one_line_naming_what_to_do(inspect, stack_name, monkeypatch, capsys) -> None:
    inspect(stack_name)  # points this process at the emulator

    def over_quota(*_args, **_kwargs):
        error = {"Error": {"Code": "VcpuLimitExceeded", "Message": "You have requested more vCPU capacity"}}
        raise ClientError(error, "RunInstances")

    monkeypatch.setattr(stack, "up", over_quota)
    assert main(["up", "--stack", stack_name, "--no-wait"]) == 1
    printed = capsys.readouterr()
    assert printed.err.startswith("error: an AWS quota was hit (VcpuLimitExceeded")
    assert "Service Quotas" in printed.err
    assert printed.err.count("\n") == 1


def _client_error(code: str, operation: str = "RunInstances") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} happened"}}, operation)


@pytest.mark.parametrize(
    ("error", "advice"),
    [
        (_client_error("InstanceLimitExceeded"), "Service Quotas"),
        (_client_error("VcpuLimitExceeded"), "Service Quotas"),
        (_client_error("LimitExceeded", "CreateRole"), "Service Quotas"),
        (_client_error("TooManyBuckets", "CreateBucket"), "Service Quotas"),
        (_client_error("BucketAlreadyExists", "CreateBucket"), "choose another --stack name"),
        (_client_error("EntityAlreadyExists", "CreateRole"), "choose another --stack name"),
        (_client_error("InvalidGroup.Duplicate", "CreateSecurityGroup"), "choose another --stack name"),
        (_client_error("AuthFailure", "DescribeVpcs"), "opt-in region"),
        (_client_error("OptInRequired", "DescribeVpcs"), "choose another --region"),
        (_client_error("ExpiredToken", "GetCallerIdentity"), "refresh them"),
        (_client_error("UnauthorizedOperation"), "may not call RunInstances"),
        (_client_error("AccessDenied", "CreateRole"), "may not call CreateRole"),
        (_client_error("InsufficientInstanceCapacity"), "another --instance-type"),
        (NoCredentialsError(), "no AWS credentials found"),
        (EndpointConnectionError(endpoint_url="https://ec2.example"), "check the network"),
    ],
)
def test_each_usual_failure_names_what_to_do(error: Exception, advice: str) -> None:
    sentence = explain(error, "eu-west-1")
    assert advice in sentence
    assert "\n" not in sentence
