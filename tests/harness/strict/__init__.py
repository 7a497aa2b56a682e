"""An AWS-strict layer between the services and an emulator: AWS's limits and AWS's failures.

wire.py knows the protocols, rules.py the limits and the faults, proxy.py serves them over HTTP.
"""
