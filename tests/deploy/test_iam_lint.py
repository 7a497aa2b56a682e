"""Every IAM policy the project generates, linted against AWS's action and resource reference.

moto and LocalStack authorize any resource for any action, so a statement that real IAM never matches
(an action on a resource type it does not take, an action with no resource-level permissions on an
ARN) passes every other test. parliament (pinned in requirements/lock.txt) carries AWS's Service
Authorization Reference and reports such statements, unknown actions and condition keys, malformed
ARNs and unknown principals. The builders in qcompute.iam are linted directly; then every policy
document `scripts/deploy up` sends is found in its recorded calls and linted, so a policy added later
is linted without being listed here.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import pytest

from harness.services import ROOT
from qcompute import iam
from qcompute.names import StackNames

with warnings.catch_warnings():
    # parliament 1.6.4 finds its data through pkg_resources, which setuptools warns is deprecated,
    # and leaves the files it reads open: neither says anything about our policies.
    warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)
    warnings.simplefilter("ignore", ResourceWarning)
    import parliament
    from parliament.cli import is_finding_filtered

Kind = Literal["identity", "resource", "trust"]

NAMES = StackNames("demo", "123456789012", "eu-west-1")
# parliament's command line reports findings of this severity and above by default.
MINIMUM_SEVERITY = "LOW"
# Findings accepted on purpose, as `lint` words them, each with why. Empty: every policy lints clean.
ACCEPTED: dict[str, str] = {}


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def _one_statement_per_line(document: dict[str, Any]) -> str:
    """The document as JSON text whose line 2 + i holds statement i, so a finding's line names it."""
    fields = [
        f"{json.dumps(key)}: {json.dumps(value)}" for key, value in document.items() if key != "Statement"
    ]
    statements = ",\n".join(json.dumps(statement) for statement in _statements(document))
    return "{" + ", ".join([*fields, f'"Statement": [\n{statements}\n]']) + "}"


def _detail(detail: Any) -> str:
    if isinstance(detail, list):
        return "; ".join(_detail(item) for item in detail)
    if isinstance(detail, dict) and "required_format" in detail:
        return f"{detail['action']}, required format '{detail['required_format']}'"
    return str(detail)


def _shape(document: dict[str, Any], kind: Kind) -> list[str]:
    """What AWS refuses in this kind of policy and parliament does not check: it reads them all alike."""
    problems = []
    for statement in _statements(document):
        sid = statement.get("Sid", "?")
        names_principal = "Principal" in statement or "NotPrincipal" in statement
        if kind == "identity" and names_principal:
            problems.append(f"{sid} SHAPE: identity policies take no Principal")
        if kind != "identity" and not names_principal:
            problems.append(f"{sid} SHAPE: {kind} policies need a Principal")
        if kind == "trust" and ("Resource" in statement or "NotResource" in statement):
            problems.append(f"{sid} SHAPE: trust policies take no Resource")
    return problems


def lint(document: dict[str, Any], kind: Kind, role_arn: str = "") -> list[str]:
    """parliament's findings at its default severity, as `<Sid> <ISSUE>: <detail>`, less the accepted.

    A trust policy must not name a Resource, and parliament cannot read a statement without one
    (duo-labs/parliament#229): it governs the role it belongs to, so it is linted as naming that role.
    """
    problems = _shape(document, kind)
    statements = _statements(document)
    if kind == "trust":
        document = {
            **document,
            "Statement": [{**statement, "Resource": role_arn} for statement in statements],
        }
    policy = parliament.analyze_policy_string(_one_statement_per_line(document))
    for finding in map(parliament.enhance_finding, policy.findings):
        if is_finding_filtered(finding, MINIMUM_SEVERITY):
            continue
        index = finding.location.get("line", 0) - 2
        sid = statements[index].get("Sid", f"statement {index + 1}") if 0 <= index < len(statements) else "-"
        problems.append(f"{sid} {finding.issue}: {_detail(finding.detail)}")
    return [problem for problem in problems if problem not in ACCEPTED]


def _role_arn(names: StackNames, role: str) -> str:
    return f"arn:aws:iam::{names.account_id}:role/{role}"


# --- the builders ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        *iam.SERVICE_POLICIES.values(),
        iam.instance_boot_policy,
        iam.instance_logs_policy,
        iam.instance_policy,
        iam.worker_host_policy,
    ],
)
def test_every_identity_policy_builder_lints_clean(build) -> None:
    assert lint(build(NAMES), "identity") == []


def test_the_instance_role_trust_policy_lints_clean() -> None:
    assert lint(iam.ec2_trust_policy(), "trust", _role_arn(NAMES, NAMES.instance_role)) == []


# --- the lint itself ---------------------------------------------------------------------------------


def _allow(action: str, resource: str, **more: Any) -> dict[str, Any]:
    statement = {"Sid": "Wrong", "Effect": "Allow", "Action": [action], "Resource": [resource], **more}
    return {"Version": "2012-10-17", "Statement": [statement]}


@pytest.mark.parametrize(
    ("document", "kind", "expected"),
    [
        pytest.param(
            _allow("s3:GetObject", NAMES.bucket_arn),
            "identity",
            "Wrong RESOURCE_MISMATCH: s3:GetObject, required format 'arn:*:s3:::*/*'",
            id="object-action-on-a-bucket",
        ),
        pytest.param(
            _allow("sqs:ListQueues", "arn:aws:sqs:eu-west-1:123456789012:*"),
            "identity",
            "Wrong RESOURCE_MISMATCH: sqs:ListQueues, required format '*'",
            id="no-resource-level-permissions-on-an-arn",
        ),
        pytest.param(
            _allow("sqs:SendMessage", "*"),
            "identity",
            "Wrong RESOURCE_STAR: sqs:SendMessage",
            id="star-on-an-action-with-resource-level-permissions",
        ),
        pytest.param(
            _allow("sqs:ListQueue", NAMES.queue_arn("demo-requests")),
            "identity",
            "Wrong UNKNOWN_ACTION: Unknown action sqs:ListQueue",
            id="misspelt-action",
        ),
        pytest.param(
            _allow("sqs:SendMessage", NAMES.queue_arn("demo-logs"), Principal={"AWS": "someone"}),
            "resource",
            "Wrong UNKNOWN_PRINCIPAL: someone",
            id="unknown-principal",
        ),
        pytest.param(
            _allow("sqs:SendMessage", NAMES.queue_arn("demo-logs")),
            "resource",
            "Wrong SHAPE: resource policies need a Principal",
            id="resource-policy-without-principal",
        ),
        pytest.param(
            _allow(
                "sqs:SendMessage", NAMES.queue_arn("demo-logs"), Principal={"Service": "sns.amazonaws.com"}
            ),
            "identity",
            "Wrong SHAPE: identity policies take no Principal",
            id="identity-policy-with-principal",
        ),
        pytest.param(
            _allow("sts:AssumeRole", "*", Principal={"Service": "ec2.amazonaws.com"}),
            "trust",
            "Wrong SHAPE: trust policies take no Resource",
            id="trust-policy-with-resource",
        ),
    ],
)
def test_the_lint_reports_what_real_iam_would_refuse(document, kind: Kind, expected: str) -> None:
    assert expected in lint(document, kind, _role_arn(NAMES, "r"))


# --- every policy `scripts/deploy up` sends ------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """A policy document found in a recorded call."""

    label: str
    kind: Kind
    document: dict[str, Any]
    params: dict[str, Any]


def _kind(call: dict[str, Any], where: str) -> Kind:
    """How AWS reads a document, by where it is sent: IAM and STS take identity and trust policies,
    every other service a policy on one of its resources (a queue's, a bucket's, a topic's, a key's)."""
    if call["service"] == "iam" and (
        where == "AssumeRolePolicyDocument" or call["operation"] == "UpdateAssumeRolePolicy"
    ):
        return "trust"
    return "identity" if call["service"] in {"iam", "sts"} else "resource"


def _sent_policies(calls: list[dict[str, Any]]) -> list[Sent]:
    found = []
    for call in calls:
        params = call["params"]
        targets = [
            params[k] for k in ("RoleName", "QueueName", "QueueUrl", "Bucket", "TopicArn") if k in params
        ]
        for where, document in call.get("policies", {}).items():
            label = f"{call['service']}:{call['operation']}({', '.join(targets)}) {where}"
            found.append(Sent(label, _kind(call, where), document, params))
    return found


def test_every_policy_deploy_up_sends_lints_clean(deploy, inspect, stack_name, tmp_path) -> None:
    record = tmp_path / "calls.jsonl"
    hook = str(ROOT / "tests/harness/record_calls")
    with pytest.MonkeyPatch.context() as patch:
        # scripts/deploy keeps this environment (less AWS_*): the hook records every call it makes.
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [hook, os.environ.get("PYTHONPATH")])))
        patch.setenv("RECORD_AWS_CALLS", str(record))
        # With a worker fleet: its hosts' role is sent too.
        deploy("up", "--stack", stack_name, "--worker-hosts", "0..1", "--no-wait")
    names = inspect(stack_name).names
    found = _sent_policies([json.loads(line) for line in record.read_text().splitlines()])

    # The search finds the policies the deployer is known to send, each read as AWS reads it.
    sent = [(policy.kind, policy.document) for policy in found]
    assert ("trust", iam.ec2_trust_policy()) in sent
    assert ("identity", iam.instance_policy(names)) in sent
    assert ("identity", iam.worker_host_policy(names)) in sent
    assert [policy.kind for policy in found if policy.params.get("QueueName") == names.log_queue] == [
        "resource"
    ], "the log queue's policy (provision.py)"

    findings = [
        f"{policy.label}: {problem}"
        for policy in found
        for problem in lint(policy.document, policy.kind, _role_arn(names, policy.params.get("RoleName", "")))
    ]
    assert findings == []
