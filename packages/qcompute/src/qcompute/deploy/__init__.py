"""Deploy a stack to one EC2 instance in a real AWS account, show it, and remove it (`scripts/deploy`)."""
