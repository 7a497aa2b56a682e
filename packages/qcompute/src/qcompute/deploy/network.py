"""The stack's network: the default VPC it lives in and its security group (the web ports from one
CIDR only: 80, and 443 when the stack has a domain).

`ensure_security_group` creates what is missing and corrects what drifted (a port no longer wanted is
revoked), or with `dry_run` only says so; `remove_security_groups` deletes only groups carrying the
stack's tag.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from botocore.exceptions import ClientError

from qcompute.aws import error_code
from qcompute.deploy.infra import owned, tag_dict, tag_list
from qcompute.deploy.session import DeployError, Deployment
from qcompute.deploy.waiting import wait_for
from qcompute.provision import Change

HTTP_PORT = 80
HTTPS_PORT = 443
_PORT_NAMES = {HTTP_PORT: "HTTP", HTTPS_PORT: "HTTPS"}


def web_ports(domain: str) -> tuple[int, ...]:
    """With a domain the proxy answers 443 and redirects 80 to it (and ACME's HTTP challenge uses 80)."""
    return (HTTP_PORT, HTTPS_PORT) if domain else (HTTP_PORT,)


def default_vpc(deployment: Deployment) -> str:
    """The default VPC's id: the instance goes into one of its public subnets."""
    vpcs = deployment.ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        region = deployment.names.region
        raise DeployError(
            f"no default VPC in {region}: create one with `aws ec2 create-default-vpc --region {region}` "
            "or choose another --region"
        )
    return vpcs[0]["VpcId"]


def find_security_groups(
    deployment: Deployment, vpc_id: str | None = None, name: str | None = None
) -> list[dict[str, Any]]:
    """Groups with the stack's (web) group name or this name (in the VPC, if given), whoever tagged them."""
    filters = [{"Name": "group-name", "Values": [name or deployment.names.security_group]}]
    if vpc_id:
        filters.append({"Name": "vpc-id", "Values": [vpc_id]})
    return deployment.ec2.describe_security_groups(Filters=filters)["SecurityGroups"]


def check_cidr(cidr: str) -> str:
    try:
        return str(ipaddress.ip_network(cidr, strict=True))
    except ValueError as error:
        raise DeployError(f"--http-cidr {cidr!r} is not a network in CIDR form ({error})") from None


def _ingress_rules(deployment: Deployment, group_id: str) -> list[dict[str, Any]]:
    rules = deployment.ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])
    return [rule for rule in rules["SecurityGroupRules"] if not rule["IsEgress"]]


def _source(rule: dict[str, Any]) -> str | None:
    return rule.get("CidrIpv4") or rule.get("CidrIpv6")


def _port_from(rule: dict[str, Any]) -> tuple[int, str] | None:
    """(port, source CIDR) of a rule letting one TCP port in from a CIDR; None for any other rule."""
    source = _source(rule)
    port = rule.get("FromPort")
    if rule["IpProtocol"] != "tcp" or source is None or port != rule.get("ToPort"):
        return None
    return port, source


def describe_rules(cidr: str, ports: tuple[int, ...]) -> str:
    return f"inbound {', '.join(f'tcp/{port}' for port in ports)} from {cidr} only"


def http_cidr(deployment: Deployment, group_id: str) -> str | None:
    """The one CIDR the group lets reach port 80: what the next `up` keeps unless given another."""
    sources = {
        allowed[1]
        for rule in _ingress_rules(deployment, group_id)
        if (allowed := _port_from(rule)) and allowed[0] == HTTP_PORT
    }
    return sources.pop() if len(sources) == 1 else None


def web_access(deployment: Deployment, group_id: str) -> str | None:
    """What the group lets in, if that is web ports from one CIDR and nothing else (for `status`)."""
    found = [_port_from(rule) for rule in _ingress_rules(deployment, group_id)]
    allowed = [item for item in found if item is not None]
    if not found or len(allowed) != len(found):
        return None
    ports = tuple(sorted({port for port, _ in allowed}))
    sources = {source for _, source in allowed}
    if len(sources) != 1 or HTTP_PORT not in ports or not set(ports) <= set(_PORT_NAMES):
        return None
    return describe_rules(sources.pop(), ports)


def _permission(cidr: str, port: int) -> dict[str, Any]:
    permission: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port}
    description = {"Description": f"qcompute {_PORT_NAMES[port]}"}
    if ipaddress.ip_network(cidr).version == 6:
        permission["Ipv6Ranges"] = [{"CidrIpv6": cidr, **description}]
    else:
        permission["IpRanges"] = [{"CidrIp": cidr, **description}]
    return permission


def ensure_security_group(
    deployment: Deployment, vpc_id: str, cidr: str, ports: tuple[int, ...], dry_run: bool
) -> tuple[Change, str | None]:
    """The web `ports` from `cidr` and nothing else inbound; outbound stays open (packages, images, AWS
    APIs, and the certificate authority)."""
    ec2, names = deployment.ec2, deployment.names
    detail = describe_rules(cidr, ports)
    wanted = {(port, cidr) for port in ports}
    groups = find_security_groups(deployment, vpc_id)
    if not groups:
        group_id = None
        if not dry_run:
            group_id = ec2.create_security_group(
                GroupName=names.security_group,
                Description=f"qcompute stack {names.stack}: web ports only",
                VpcId=vpc_id,
                TagSpecifications=[{"ResourceType": "security-group", "Tags": tag_list(names.tags)}],
            )["GroupId"]
            ec2.authorize_security_group_ingress(
                GroupId=group_id, IpPermissions=[_permission(cidr, port) for port in ports]
            )
        return Change("security group", names.security_group, "create", detail), group_id
    group_id = groups[0]["GroupId"]
    rules = _ingress_rules(deployment, group_id)
    extra = [rule["SecurityGroupRuleId"] for rule in rules if _port_from(rule) not in wanted]
    present = {_port_from(rule) for rule in rules}
    missing = [port for port in ports if (port, cidr) not in present]
    label = f"{names.security_group} ({group_id})"
    if not extra and not missing:
        return Change("security group", label, "ok", detail), group_id
    if not dry_run:
        if extra:
            ec2.revoke_security_group_ingress(GroupId=group_id, SecurityGroupRuleIds=extra)
        if missing:
            ec2.authorize_security_group_ingress(
                GroupId=group_id, IpPermissions=[_permission(cidr, port) for port in missing]
            )
    return Change(
        "security group", label, "update", f"{detail}; {len(extra)} other rule(s) removed"
    ), group_id


def default_subnets(deployment: Deployment, vpc_id: str) -> list[str]:
    """The default VPC's default subnets (one per zone), sorted: where worker hosts may start."""
    found = deployment.ec2.describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "default-for-az", "Values": ["true"]}]
    )["Subnets"]
    if not found:
        raise DeployError(f"the default VPC {vpc_id} has no default subnet: create one per zone")
    return sorted(subnet["SubnetId"] for subnet in found)


def ensure_closed_group(
    deployment: Deployment, vpc_id: str, name: str, dry_run: bool
) -> tuple[Change, str | None]:
    """A group that lets nothing in (any inbound rule found is revoked); outbound stays open (AWS
    APIs, packages, images)."""
    ec2, names = deployment.ec2, deployment.names
    detail = "no inbound rule"
    groups = find_security_groups(deployment, vpc_id, name)
    if not groups:
        group_id = None
        if not dry_run:
            group_id = ec2.create_security_group(
                GroupName=name,
                Description=f"qcompute stack {names.stack}: worker hosts, nothing inbound",
                VpcId=vpc_id,
                TagSpecifications=[{"ResourceType": "security-group", "Tags": tag_list(names.tags)}],
            )["GroupId"]
        return Change("security group", name, "create", detail), group_id
    group_id = groups[0]["GroupId"]
    label = f"{name} ({group_id})"
    rules = [rule["SecurityGroupRuleId"] for rule in _ingress_rules(deployment, group_id)]
    if not rules:
        return Change("security group", label, "ok", detail), group_id
    if not dry_run:
        ec2.revoke_security_group_ingress(GroupId=group_id, SecurityGroupRuleIds=rules)
    return Change("security group", label, "update", f"{detail}: {len(rules)} rule(s) removed"), group_id


def remove_security_groups(deployment: Deployment, name: str | None = None) -> list[Change]:
    """Delete the stack's groups (by name and tag, in any VPC) once no interface uses them."""
    changes = []
    for group in find_security_groups(deployment, name=name):
        label = f"{group['GroupName']} ({group['GroupId']})"
        if not owned(deployment, tag_dict(group.get("Tags"))):
            changes.append(Change("security group", label, "skip", "not tagged with this stack"))
            continue

        def deleted(group_id: str = group["GroupId"]) -> tuple[bool, str]:
            try:
                deployment.ec2.delete_security_group(GroupId=group_id)
            except ClientError as error:
                if error_code(error) == "DependencyViolation":
                    # The terminated instance's network interface takes a moment to go.
                    return False, "still in use by a network interface"
                if error_code(error) == "InvalidGroup.NotFound":
                    return True, "deleted"
                raise
            return True, "deleted"

        wait_for(f"security group {group['GroupId']} to be released", deleted, timeout=300, interval=10)
        changes.append(Change("security group", label, "delete"))
    return changes
