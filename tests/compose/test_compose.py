"""The containers as users run them, driven from outside through 127.0.0.1.

The tests run in file order against one stack: the stop test is last.
"""

from __future__ import annotations

import json
import os
import random
import re
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import client, reference
from harness.browser import launch_chromium
from harness.services import ROOT
from harness.waiting import eventually
from qcompute import contract

pytestmark = pytest.mark.compose

SERVICES = ("frontend", "worker", "logger")
GRACE_SECONDS = {"frontend": 30, "worker": 60, "logger": 30}


def _log_object(composed, request_id: str) -> dict | None:
    s3 = composed.aws("s3")
    bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith("local-logs-"))
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=contract.log_key(request_id))["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


def test_every_container_is_healthy(composed) -> None:
    states = {c["Config"]["Labels"]["com.docker.compose.service"]: c["State"] for c in composed.containers()}
    assert set(states) == {"localstack", "proxy", *SERVICES}
    for service, state in states.items():
        assert state["Health"]["Status"] == "healthy", (service, state["Health"]["Log"][-1:])


def test_api_round_trip_and_the_log_object_in_s3(composed) -> None:
    document = client.compute(composed.url, [10, 20, 30, 40], ["sum", "mean", "variance"])
    assert document["results"] == {"sum": 100, "mean": 25, "variance": 125}
    record = eventually(
        lambda: _log_object(composed, document["id"]), what="the log object in LocalStack's S3"
    )
    assert record["request"] == {
        "numbers": [10, 20, 30, 40],
        "operations": ["sum", "mean", "variance"],
        "count": 4,
    }
    assert record["results"] == document["results"]


def test_a_browser_computes_sees_history_and_errors(composed, screenshots) -> None:
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            # Script errors, CSP violations and failed subresources; a 400 page itself is expected.
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on(
                "console",
                lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
            )
            page.on(
                "response",
                lambda r: (
                    problems.append(f"{r.status} {r.url}")
                    if r.status >= 400 and r.request.resource_type != "document"
                    else None
                ),
            )

            page.goto(composed.url + "/")
            assert page.locator("input[name=operations]:checked").count() == 16, "all operations by default"
            page.fill("#numbers", "3 1 4 1 5\n9, 2, 6")
            page.click("[data-check=none]")
            for operation in ("sum", "median", "mode", "stdev"):
                page.check(f"input[value={operation}]")
            page.screenshot(path=screenshots / "01-form.png", full_page=True)
            page.click("#submit")

            page.wait_for_selector("#result-sum")
            assert page.inner_text("#result-sum td") == "31"
            assert page.inner_text("#result-median td") == "3.5"
            assert page.inner_text("#result-mode td") == "1"
            assert page.inner_text("#result-stdev td") == repr(
                reference.expected("stdev", [3, 1, 4, 1, 5, 9, 2, 6])
            )
            assert page.inner_text("#input") == "3, 1, 4, 1, 5, 9, 2, 6"
            request_id = page.inner_text("#permalink code")
            # The script puts the permalink in the address bar: a reload shows, never resubmits.
            assert page.url == f"{composed.url}/requests/{request_id}"
            page.screenshot(path=screenshots / "02-result.png", full_page=True)

            eventually(lambda: _log_object(composed, request_id), what="the log object")
            page.reload()
            assert page.inner_text("#result-sum td") == "31"

            page.click("nav >> text=History")
            row = page.locator(f"tr[data-id='{request_id}']")
            row.wait_for()
            assert "sum, median, mode, stdev" in row.inner_text()
            page.screenshot(path=screenshots / "03-history.png", full_page=True)
            row.locator("a").click()
            page.wait_for_selector("#result-sum")
            assert page.url.endswith(f"/requests/{request_id}")

            page.goto(composed.url + "/")
            page.fill("#numbers", "1 2 three 4")
            page.click("#submit")
            error = page.locator("#numbers-error")
            error.wait_for()
            assert (
                error.inner_text() == "'three' (number 3) is not an integer; use whole numbers like 42 or -7"
            )
            assert page.input_value("#numbers") == "1 2 three 4", "the input is kept"
            assert page.get_attribute("#numbers", "aria-invalid") == "true"
            page.screenshot(path=screenshots / "04-bad-input.png", full_page=True)
        finally:
            browser.close()
    assert problems == [], "no script errors or CSP violations in the console"


def test_no_service_logged_an_error(composed) -> None:
    for service in SERVICES:
        lines = composed.compose("logs", "--no-color", service).stdout.splitlines()
        errors = [line for line in lines if '"level": "error"' in line]
        assert errors == [], service


def test_containers_are_non_root_read_only_and_without_capabilities(composed) -> None:
    for container in composed.containers():
        service = container["Config"]["Labels"]["com.docker.compose.service"]
        if service in ("localstack", "proxy"):  # the proxy: tests/compose/test_https.py
            continue
        host = container["HostConfig"]
        assert container["Config"]["User"] == "10001:10001", service
        assert host["ReadonlyRootfs"] is True, service
        assert host["CapDrop"] == ["ALL"], service
        assert "no-new-privileges:true" in host["SecurityOpt"], service
        assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "5", "max-size": "10m"}}
        assert host["RestartPolicy"]["Name"] == "unless-stopped"
        uid = composed.compose("exec", "-T", service, "python3", "-c", "import os; print(os.getuid())")
        assert uid.stdout.strip() == "10001"


def test_workers_scale_out(composed) -> None:
    composed.compose("up", "--detach", "--wait", "--no-build", "--scale", "worker=2", timeout=300)
    workers = composed.containers("worker")
    assert len(workers) == 2
    assert all(w["State"]["Health"]["Status"] == "healthy" for w in workers)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda i: client.compute(composed.url, [i, i], ["sum"]), range(40)))
    assert [a["results"]["sum"] for a in answers] == [2 * i for i in range(40)]
    names = {a["worker"] for a in answers}
    assert names, "every answer names its worker"
    composed.compose("up", "--detach", "--wait", "--no-build", "--scale", "worker=1", timeout=300)
    assert len(composed.containers("worker")) == 1


def _cgroup(composed, service: str, *names: str) -> str:
    """The first of a container's cgroup memory files that exists (cgroup v2 or v1), as text."""
    paths = " ".join(f"/sys/fs/cgroup/{name}" for name in names)
    script = f"for f in {paths}; do [ -r $f ] && exec cat $f; done"
    return composed.compose("exec", "-T", service, "sh", "-c", script).stdout


def _oom_kills(composed, service: str) -> int:
    events = _cgroup(composed, service, "memory.events", "memory/memory.oom_control")
    return int(re.search(r"^oom_kill (\d+)", events, re.M).group(1))


def _peak_mib(composed, service: str) -> float:
    return int(_cgroup(composed, service, "memory.peak", "memory/memory.max_usage_in_bytes")) / 2**20


def _patiently(call):
    """A well-behaved client: on 503 busy it waits as Retry-After says, then asks again."""
    for refusals in range(20):
        response = call()
        if response.status_code != 503:
            return response, refusals
        assert response.json()["error"]["code"] in {"busy", "unavailable"}, response.text
        time.sleep(int(response.headers.get("Retry-After", "2")))
    raise AssertionError("still refused after 20 tries")


def test_a_million_integers_twice_at_once_fit_the_memory_limits(composed) -> None:
    limits = {
        c["Config"]["Labels"]["com.docker.compose.service"]: c["HostConfig"] for c in composed.containers()
    }
    for service, mib in {"frontend": 448, "worker": 512, "logger": 160}.items():
        assert limits[service]["Memory"] == mib * 2**20, service
        assert limits[service]["MemorySwap"] == mib * 2**20, f"{service}: no swap beyond the limit"
    rng = random.Random(11)
    large = [[rng.randint(-(10**12), 10**12) for _ in range(1_000_000)] for _ in range(2)]

    def big(numbers: list[int]):
        # Every operation: the sorted copy and the modes (every value, when all are distinct) are the
        # largest results there are.
        return _patiently(lambda: client.submit(composed.url, numbers, wait=30))

    def small(index: int) -> list[int]:
        return [client.compute(composed.url, [index, n], ["sum"])["results"]["sum"] for n in range(5)]

    with ThreadPoolExecutor(max_workers=18) as pool:
        bigs = [pool.submit(big, numbers) for numbers in large]
        smalls = [pool.submit(small, index) for index in range(16)]
        answers = [future.result(timeout=600) for future in bigs]
        assert [future.result(timeout=600) for future in smalls] == [
            [index + n for n in range(5)] for index in range(16)
        ]
    for numbers, (response, refusals) in zip(large, answers, strict=True):
        assert response.status_code in (200, 202), response.text
        document = response.json()
        if response.status_code == 202:
            document = client.until_done(composed.url, document["id"], timeout=300)
        assert document["results"]["sum"] == sum(numbers)
        assert document["results"]["median"] == statistics.median(numbers)
        assert eventually(lambda rid=document["id"]: _log_object(composed, rid), timeout=180, what="its log")
        print(f"a million integers: {refusals} refusal(s) before it was taken")
    peaks = {service: round(_peak_mib(composed, service)) for service in SERVICES}
    print(f"peak memory of each container (MiB): {peaks}")
    for container in composed.containers():
        service = container["Config"]["Labels"]["com.docker.compose.service"]
        if service in SERVICES:
            assert container["State"]["OOMKilled"] is False, service
            assert container["RestartCount"] == 0, service
            assert _oom_kills(composed, service) == 0, f"no process of {service} was killed for memory"


def test_production_compose_file_needs_its_settings() -> None:
    # Only what a user sets, plus where the docker CLI finds its compose plugin.
    base = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"]}
    example = {"STACK_NAME": "demo", "AWS_REGION": "eu-west-1", "SECRET_KEY": "x" * 32}
    config = subprocess.run(
        ["docker", "compose", "-f", "compose.yaml", "config", "--format", "json"],
        cwd=ROOT,
        env={**base, **example},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert config.returncode == 0, config.stderr
    services = json.loads(config.stdout)["services"]
    # The proxy owns the ports; the frontends publish none, so a rollout can run two side by side.
    assert {port["published"] for port in services["proxy"]["ports"]} == {"80", "443"}
    assert "ports" not in services["frontend"]
    for service in SERVICES:
        environment = services[service]["environment"]
        assert not any(key.startswith(("AWS_ACCESS", "AWS_SECRET", "AWS_ENDPOINT")) for key in environment)
    for variable in example:
        settings = {key: value for key, value in example.items() if key != variable}
        missing = subprocess.run(
            ["docker", "compose", "-f", "compose.yaml", "config"],
            cwd=ROOT,
            env={**base, **settings},
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert missing.returncode != 0, variable
        assert f"required variable {variable} is missing a value: set {variable}" in missing.stderr


def test_stop_ends_every_container_cleanly_and_loses_nothing_in_flight(composed) -> None:
    # Requests in every state when the stop comes: queued, being computed, being logged.
    with ThreadPoolExecutor(max_workers=8) as pool:
        pending = list(
            pool.map(lambda i: client.submit(composed.url, [i, 1], ["sum"], wait=0).json()["id"], range(40))
        )
    started = time.monotonic()
    composed.compose("stop", *SERVICES, timeout=300)
    took = time.monotonic() - started
    for container in composed.containers():
        service = container["Config"]["Labels"]["com.docker.compose.service"]
        if service in SERVICES:
            assert container["State"]["Status"] == "exited", service
            assert container["State"]["ExitCode"] == 0, (service, container["State"])
    assert took < max(GRACE_SECONDS.values()), f"docker compose stop took {took:.1f} s"
    logs = composed.compose("logs", "--no-color", "worker", "logger").stdout
    assert "stop_requested" in logs
    assert "consumer_stopped" in logs
    assert "forced_stop" not in logs

    composed.compose("start", *SERVICES, timeout=300)
    composed.compose("up", "--detach", "--wait", "--no-build", timeout=300)
    for index, request_id in enumerate(pending):
        done = client.until_done(composed.url, request_id, timeout=120)
        assert done["results"] == {"sum": index + 1}
        assert eventually(lambda rid=request_id: _log_object(composed, rid), what=f"log of {request_id}")

    started = time.monotonic()
    composed.compose("stop", timeout=300)
    took = time.monotonic() - started
    codes = {c["Name"]: c["State"]["ExitCode"] for c in composed.containers()}
    assert set(codes.values()) == {0}, codes
    assert took < max(GRACE_SECONDS.values()), f"docker compose stop took {took:.1f} s"
    print(f"docker compose stop of the whole stack took {took:.1f} s")


def test_readme_first_command_is_what_these_tests_run() -> None:
    readme = (ROOT / "README.md").read_text()
    command = (
        "docker compose --env-file compose.local.env -f compose.yaml -f compose.local.yaml up --build --wait"
    )
    assert command in readme
    assert re.search(r"http://localhost:8080", readme)
