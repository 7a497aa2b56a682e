"""The stack's identity and secrets (the hosts' roles and profiles, SECRET_KEY parameter, account
parameters), and the tag checks that tell whether a resource with one of its names is really the
stack's.

Each `ensure_*` creates what is missing and corrects what drifted, or with `dry_run` only says so,
in the `Change` shape provisioning uses; each `remove_*` deletes only what carries the stack's tag.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from qcompute import iam as policies
from qcompute.aws import error_code
from qcompute.deploy.session import DeployError, Deployment
from qcompute.names import STACK_TAG, StackNames
from qcompute.provision import Change


@dataclass(frozen=True)
class HostRole:
    """An EC2 role and its instance profile: the web host's, or the worker hosts'."""

    role: str
    profile: str
    policy_name: str
    policy: dict[str, Any]
    managed: tuple[str, ...]
    description: str


def web_host_role(names: StackNames) -> HostRole:
    """The web host's role: the three services, its own reads, and Session Manager."""
    return HostRole(
        role=names.instance_role,
        profile=names.instance_profile,
        policy_name=policies.INSTANCE_POLICY_NAME,
        policy=policies.instance_policy(names),
        managed=(policies.SESSION_MANAGER_POLICY_ARN,),
        description=f"qcompute stack {names.stack}: the services on its EC2 instance",
    )


def worker_host_role(names: StackNames) -> HostRole:
    """The worker hosts' role: the worker's permissions only. No Session Manager: nothing is rolled
    out to a worker host, and its workers log to CloudWatch Logs."""
    return HostRole(
        role=names.worker_role,
        profile=names.worker_profile,
        policy_name=policies.WORKER_HOST_POLICY_NAME,
        policy=policies.worker_host_policy(names),
        managed=(),
        description=f"qcompute stack {names.stack}: the worker on its worker hosts",
    )


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def tag_dict(tags: list[dict[str, str]] | None) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in tags or []}


def owned(deployment: Deployment, tags: dict[str, str]) -> bool:
    return tags.get(STACK_TAG) == deployment.names.stack


# --- lookups: None when absent --------------------------------------------------------------------


def find_role(deployment: Deployment, name: str | None = None) -> dict[str, Any] | None:
    try:
        return deployment.iam.get_role(RoleName=name or deployment.names.instance_role)["Role"]
    except ClientError as error:
        if error_code(error) == "NoSuchEntity":
            return None
        raise


def find_profile(deployment: Deployment, name: str | None = None) -> dict[str, Any] | None:
    try:
        profile = deployment.iam.get_instance_profile(
            InstanceProfileName=name or deployment.names.instance_profile
        )
    except ClientError as error:
        if error_code(error) == "NoSuchEntity":
            return None
        raise
    return profile["InstanceProfile"]


def _parameter_tags(deployment: Deployment, name: str) -> dict[str, str]:
    tags = deployment.ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)
    return tag_dict(tags.get("TagList"))


def find_secret_tags(deployment: Deployment) -> dict[str, str] | None:
    name = deployment.names.secret_key_parameter
    found = deployment.ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])
    if not found["Parameters"]:
        return None
    return _parameter_tags(deployment, name)


def find_accounts(deployment: Deployment) -> dict[str, dict[str, str]]:
    """The parameters directly under the stack's accounts path (whoever made them), with their tags.
    Listed without their values: nothing here decrypts an account."""
    pages = deployment.ssm.get_paginator("describe_parameters").paginate(
        ParameterFilters=[{"Key": "Path", "Option": "OneLevel", "Values": [deployment.names.accounts_path]}]
    )
    names = sorted(parameter["Name"] for page in pages for parameter in page["Parameters"])
    return {name: _parameter_tags(deployment, name) for name in names}


def bucket_tags(deployment: Deployment) -> dict[str, str] | None:
    """The log bucket's tags; None if there is no such bucket; raise if another account owns it."""
    s3, bucket = deployment.clients.s3, deployment.names.log_bucket
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        code = error_code(error)
        if code in {"404", "NoSuchBucket", "NotFound"}:
            return None
        if code in {"403", "Forbidden", "AccessDenied"}:
            raise DeployError(
                f"the bucket name {bucket} belongs to another AWS account: choose another --stack name"
            ) from None
        raise
    try:
        return tag_dict(s3.get_bucket_tagging(Bucket=bucket)["TagSet"])
    except ClientError as error:
        if error_code(error) == "NoSuchTagSet":
            return {}
        raise


# --- the SECRET_KEY ------------------------------------------------------------------------------------


def ensure_secret(deployment: Deployment, dry_run: bool) -> Change:
    """Generate the frontend's SECRET_KEY once per stack; it is never printed and never replaced."""
    name = deployment.names.secret_key_parameter
    if find_secret_tags(deployment) is not None:
        return Change("secret", name, "ok", "SecureString")
    if not dry_run:
        deployment.ssm.put_parameter(
            Name=name,
            Description=f"SECRET_KEY of the qcompute frontend, stack {deployment.names.stack}",
            Value=secrets.token_hex(32),
            Type="SecureString",
            Tags=tag_list(deployment.names.tags),
        )
    return Change("secret", name, "create", "SecureString, generated")


def remove_secret(deployment: Deployment) -> list[Change]:
    name = deployment.names.secret_key_parameter
    tags = find_secret_tags(deployment)
    if tags is None:
        return []
    if not owned(deployment, tags):
        return [Change("secret", name, "skip", "not tagged with this stack")]
    deployment.ssm.delete_parameter(Name=name)
    return [Change("secret", name, "delete")]


# --- the accounts (made by scripts/users) -----------------------------------------------------------


def remove_accounts(deployment: Deployment) -> list[Change]:
    """Delete the stack's account parameters; one under its path without its tag is left alone."""
    changes = []
    for name, tags in find_accounts(deployment).items():
        if not owned(deployment, tags):
            changes.append(Change("account", name, "skip", "not tagged with this stack"))
            continue
        try:
            deployment.ssm.delete_parameter(Name=name)
        except ClientError as error:
            if error_code(error) != "ParameterNotFound":  # removed meanwhile (scripts/users remove)
                raise
        changes.append(Change("account", name, "delete"))
    return changes


# --- the instance role and profile -----------------------------------------------------------------


def _normalized(policy: dict[str, Any]) -> str:
    """Compare policies by content: IAM may hand a one-item list back as a plain string."""

    def listed(value: Any) -> list:
        return sorted(value) if isinstance(value, list) else [value]

    statements = [
        {k: listed(v) if k in {"Action", "Resource"} else v for k, v in statement.items()}
        for statement in policy.get("Statement", [])
    ]
    return json.dumps({**policy, "Statement": statements}, sort_keys=True)


def _inline_policy(deployment: Deployment, host: HostRole) -> dict[str, Any] | None:
    try:
        return deployment.iam.get_role_policy(RoleName=host.role, PolicyName=host.policy_name)[
            "PolicyDocument"
        ]
    except ClientError as error:
        if error_code(error) == "NoSuchEntity":
            return None
        raise


def ensure_role(deployment: Deployment, dry_run: bool, host: HostRole | None = None) -> list[Change]:
    """A host role: EC2 trust, its inline policy and its managed policies (the web host's by default)."""
    iam, names = deployment.iam, deployment.names
    host = host or web_host_role(names)
    role = find_role(deployment, host.role)
    trust = policies.ec2_trust_policy()
    changes = []
    if role is None:
        if not dry_run:
            iam.create_role(
                RoleName=host.role,
                AssumeRolePolicyDocument=json.dumps(trust),
                Description=host.description,
                Tags=tag_list(names.tags),
            )
        changes.append(Change("role", host.role, "create", "trusted by EC2"))
    elif _normalized(role["AssumeRolePolicyDocument"]) != _normalized(trust):
        if not dry_run:
            iam.update_assume_role_policy(RoleName=host.role, PolicyDocument=json.dumps(trust))
        changes.append(Change("role", host.role, "update", "trust policy"))
    else:
        changes.append(Change("role", host.role, "ok"))

    wanted = host.policy
    current = _inline_policy(deployment, host) if role is not None else None
    label = f"{host.role}/{host.policy_name}"
    detail = f"{len(wanted['Statement'])} statements, stack ARNs only"
    if current is not None and _normalized(current) == _normalized(wanted):
        changes.append(Change("role policy", label, "ok", detail))
    else:
        if not dry_run:
            iam.put_role_policy(
                RoleName=host.role, PolicyName=host.policy_name, PolicyDocument=json.dumps(wanted)
            )
        changes.append(Change("role policy", label, "create" if current is None else "update", detail))

    attached = []
    if role is not None:
        listed = iam.list_attached_role_policies(RoleName=host.role)["AttachedPolicies"]
        attached = [policy["PolicyArn"] for policy in listed]
    for managed in host.managed:
        if managed in attached:
            changes.append(Change("role policy", managed.rsplit("/", 1)[-1], "ok", "Session Manager"))
        else:
            if not dry_run:
                iam.attach_role_policy(RoleName=host.role, PolicyArn=managed)
            changes.append(Change("role policy", managed.rsplit("/", 1)[-1], "create", "Session Manager"))
    return changes


def ensure_profile(deployment: Deployment, dry_run: bool, host: HostRole | None = None) -> Change:
    iam, names = deployment.iam, deployment.names
    host = host or web_host_role(names)
    profile = find_profile(deployment, host.profile)
    if profile is None:
        if not dry_run:
            iam.create_instance_profile(InstanceProfileName=host.profile, Tags=tag_list(names.tags))
            iam.add_role_to_instance_profile(InstanceProfileName=host.profile, RoleName=host.role)
        return Change("profile", host.profile, "create", f"role {host.role}")
    roles = [role["RoleName"] for role in profile["Roles"]]
    if roles == [host.role]:
        return Change("profile", host.profile, "ok", f"role {host.role}")
    if not dry_run:
        # A profile holds at most one role: make it ours.
        for other in roles:
            iam.remove_role_from_instance_profile(InstanceProfileName=host.profile, RoleName=other)
        iam.add_role_to_instance_profile(InstanceProfileName=host.profile, RoleName=host.role)
    return Change("profile", host.profile, "update", f"role {host.role}")


def remove_profile_and_role(deployment: Deployment, host: HostRole | None = None) -> list[Change]:
    iam = deployment.iam
    host = host or web_host_role(deployment.names)
    changes = []
    profile = find_profile(deployment, host.profile)
    if profile is not None:
        if owned(deployment, tag_dict(profile.get("Tags"))):
            for role in profile["Roles"]:
                iam.remove_role_from_instance_profile(
                    InstanceProfileName=host.profile, RoleName=role["RoleName"]
                )
            iam.delete_instance_profile(InstanceProfileName=host.profile)
            changes.append(Change("profile", host.profile, "delete"))
        else:
            changes.append(Change("profile", host.profile, "skip", "not tagged with this stack"))
    role = find_role(deployment, host.role)
    if role is None:
        return changes
    if not owned(deployment, tag_dict(role.get("Tags"))):
        return [*changes, Change("role", host.role, "skip", "not tagged with this stack")]
    # IAM deletes a role only once nothing is attached to it and no profile holds it.
    for listed in iam.list_attached_role_policies(RoleName=host.role)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=host.role, PolicyArn=listed["PolicyArn"])
    for policy_name in iam.list_role_policies(RoleName=host.role)["PolicyNames"]:
        iam.delete_role_policy(RoleName=host.role, PolicyName=policy_name)
    for other in iam.list_instance_profiles_for_role(RoleName=host.role)["InstanceProfiles"]:
        iam.remove_role_from_instance_profile(
            InstanceProfileName=other["InstanceProfileName"], RoleName=host.role
        )
    iam.delete_role(RoleName=host.role)
    return [*changes, Change("role", host.role, "delete")]
