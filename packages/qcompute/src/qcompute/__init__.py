"""Shared pieces of the queue compute service: contract, settings, AWS clients, logging, names,
provisioning and the queue-consumer loop. Installed into every image and used by scripts and tests."""
