"""Start-up hook: with $RECORD_AWS_CALLS set, record every AWS call this process makes (record_aws_calls).

Put this folder on a process's PYTHONPATH and Python imports it at start-up; the code under test is
unchanged. The tests and the benchmark (bench/calls.py) use it.
"""

import os

if os.environ.get("RECORD_AWS_CALLS"):
    # This folder is on sys.path: the process and its hook share one recorder module.
    import record_aws_calls

    record_aws_calls.install(os.environ["RECORD_AWS_CALLS"])
