"""Every AWS resource name, derived in one place from the stack name.

Provisioning, the three services, the scripts and the tests all build their names here, so they agree
by construction and two stacks never collide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STACK_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
# The tag every resource of a stack carries; teardown and `deploy status` find resources by it.
STACK_TAG = "qcompute:stack"
# The containers whose output goes to CloudWatch Logs on EC2 (compose.aws.yaml), one log group each.
LOGGED_SERVICES = ("frontend", "worker", "logger", "proxy")


class InvalidStackName(ValueError):
    pass


def check_stack_name(stack: str) -> str:
    """Return the stack name, or raise if AWS naming rules (S3 is the strictest) would reject it."""
    if not STACK_NAME_PATTERN.match(stack) or stack.endswith("-") or "--" in stack:
        raise InvalidStackName(
            f"invalid stack name {stack!r}: use 1-20 lowercase letters, digits and single hyphens, "
            "starting with a letter"
        )
    return stack


@dataclass(frozen=True)
class StackNames:
    stack: str
    account_id: str
    region: str

    def __post_init__(self) -> None:
        check_stack_name(self.stack)

    @property
    def requests_queue(self) -> str:
        return f"{self.stack}-requests"

    @property
    def requests_dlq(self) -> str:
        return f"{self.stack}-requests-dlq"

    @property
    def log_queue(self) -> str:
        return f"{self.stack}-logs"

    @property
    def log_dlq(self) -> str:
        return f"{self.stack}-logs-dlq"

    @property
    def reply_queue_prefix(self) -> str:
        return f"{self.stack}-reply-"

    @property
    def results_topic(self) -> str:
        return f"{self.stack}-results"

    @property
    def log_bucket(self) -> str:
        # Bucket names are global across all accounts: the account and region make ours unique.
        return f"{self.stack}-logs-{self.account_id}-{self.region}"

    @property
    def results_topic_arn(self) -> str:
        return f"arn:aws:sns:{self.region}:{self.account_id}:{self.results_topic}"

    def queue_arn(self, queue_name: str) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account_id}:{queue_name}"

    @property
    def bucket_arn(self) -> str:
        return f"arn:aws:s3:::{self.log_bucket}"

    @property
    def tags(self) -> dict[str, str]:
        return {STACK_TAG: self.stack}

    # --- the EC2 deployment (scripts/deploy) --------------------------------------------------------

    @property
    def instance_role(self) -> str:
        # IAM names are global to the account: the region keeps two regions' stacks apart.
        return f"{self.stack}-instance-{self.region}"

    @property
    def instance_profile(self) -> str:
        return self.instance_role

    @property
    def instance_name(self) -> str:
        """The instance's Name tag, what the EC2 console shows."""
        return self.stack

    @property
    def security_group(self) -> str:
        return f"{self.stack}-web"

    # --- the worker fleet (scripts/deploy up --worker-hosts) ------------------------------------------

    @property
    def worker_role(self) -> str:
        """The worker hosts' role and instance profile: the worker's permissions only."""
        return f"{self.stack}-worker-{self.region}"

    @property
    def worker_profile(self) -> str:
        return self.worker_role

    @property
    def worker_fleet(self) -> str:
        """The worker hosts' Auto Scaling group, launch template and security group."""
        return f"{self.stack}-workers"

    @property
    def worker_fleet_arn(self) -> str:
        # A group's ARN holds a UUID AWS chooses; the name after it is exact.
        return (
            f"arn:aws:autoscaling:{self.region}:{self.account_id}:autoScalingGroup:*:"
            f"autoScalingGroupName/{self.worker_fleet}"
        )

    @property
    def worker_host_name(self) -> str:
        """The worker hosts' Name tag."""
        return f"{self.stack}-worker"

    @property
    def drain_hook(self) -> str:
        """The lifecycle hook that holds a terminating worker host until its workers stopped warmly."""
        return f"{self.stack}-workers-drain"

    @property
    def secret_key_parameter(self) -> str:
        """The SSM SecureString holding the frontend's SECRET_KEY."""
        return f"/qcompute/{self.stack}/secret-key"

    @property
    def secret_key_parameter_arn(self) -> str:
        # The name's leading slash doubles as the ARN's separator.
        return f"arn:aws:ssm:{self.region}:{self.account_id}:parameter{self.secret_key_parameter}"

    @property
    def accounts_path(self) -> str:
        """The SSM path under which each account of an `accounts` stack is a SecureString."""
        return f"/qcompute/{self.stack}/accounts"

    @property
    def accounts_path_arn(self) -> str:
        # GetParametersByPath is authorized against the path itself, not the parameters below it.
        return f"arn:aws:ssm:{self.region}:{self.account_id}:parameter{self.accounts_path}"

    def log_group(self, service: str) -> str:
        """The CloudWatch Logs group of one container service on EC2 (compose.aws.yaml names it too)."""
        return f"/qcompute/{self.stack}/{service}"

    def log_group_arn(self, service: str) -> str:
        return f"arn:aws:logs:{self.region}:{self.account_id}:log-group:{self.log_group(service)}"

    @property
    def alerts_topic(self) -> str:
        """The SNS topic the stack's CloudWatch alarms notify (`deploy up --alert-email`)."""
        return f"{self.stack}-alerts"

    @property
    def alerts_topic_arn(self) -> str:
        return f"arn:aws:sns:{self.region}:{self.account_id}:{self.alerts_topic}"

    def alarm(self, what: str) -> str:
        """A CloudWatch alarm of the stack; the prefix keeps two stacks' alarms apart."""
        return f"{self.stack}-{what}"

    @property
    def metrics_namespace(self) -> str:
        """The CloudWatch namespace of the stack's own metrics (those its log groups' filters make)."""
        return f"QCompute/{self.stack}"

    def metric_filter(self, what: str) -> str:
        """A CloudWatch Logs metric filter of the stack (filter names are per log group)."""
        return f"{self.stack}-{what}"

    @property
    def bundle_key(self) -> str:
        """The application bundle in the log bucket, outside logs/ and payloads/."""
        return "deploy/bundle.tar.gz"
