"""Test harness: an AWS emulator, provisioned stacks and the three services as real processes."""
