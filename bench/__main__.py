"""The side-by-side benchmark (run it with scripts/bench, which prepares its environment).

    python -m bench [--smoke] [--backend localstack|moto|both] [--out DIR]
                    [--requests N] [--phase-seconds S] [--clients 1,4,16,64] [--workers 1,2]
                    [--systems raw,project,seed,celery] [--sizes 10,1000,100000,1000000]
                    [--celery-poll 0.05] [--idle-seconds 30] [--history 1000000]

On 127.0.0.1 only. Every phase has a fixed request count and a time cap; every process it starts is
stopped at the end, also on failure, Ctrl-C or SIGTERM. Writes results.json, results.md and bench.png
to --out, and the processes' logs to --out/logs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import plot, prices, project, report, targets
from bench.plan import SYSTEM_ORDER, chosen
from bench.results import Run
from bench.runner import run_plan
from qcompute import contract


def _numbers(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part)


def _systems(text: str) -> tuple[str, ...]:
    systems = tuple(part for part in text.split(",") if part)
    unknown = set(systems) - set(SYSTEM_ORDER)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown systems {sorted(unknown)}; choose from {SYSTEM_ORDER}")
    return systems


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts for CI; fails on any error")
    parser.add_argument("--backend", choices=["localstack", "moto", "both"], help="default: both")
    parser.add_argument("--out", type=Path, default=Path("test-artifacts/bench"))
    parser.add_argument("--requests", type=int, help="requests per load phase")
    parser.add_argument("--phase-seconds", type=float, help="time cap of each load phase")
    parser.add_argument("--clients", type=_numbers, help="concurrent clients, e.g. 1,4,16,64")
    parser.add_argument("--workers", type=_numbers, help="worker counts, e.g. 1,2")
    parser.add_argument("--systems", type=_systems, help=f"a subset of {','.join(SYSTEM_ORDER)}")
    parser.add_argument(
        "--sizes", type=_numbers, help="integers per request for the size phase ('' for none)"
    )
    parser.add_argument(
        "--celery-poll", type=float, dest="celery_poll_seconds", help="Celery's .get() interval (0.05 s)"
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        help="how long each system is watched without load, for its idle calls (30; 1 with --smoke; 0: not)",
    )
    parser.add_argument(
        "--history",
        type=int,
        dest="history_objects",
        help="log records for the history phase (1,000,000 on LocalStack; 2,000 with --smoke; 0: none)",
    )
    return parser.parse_args(argv)


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    # scripts/bench forwards Ctrl-C as SIGTERM: unwind like Ctrl-C, so every `finally` stops its processes.
    raise KeyboardInterrupt


def say(line: str) -> None:
    print(line, flush=True)


def settings(plan: Any, load_before: tuple[float, ...]) -> dict[str, Any]:
    return {
        "command": os.environ.get("BENCH_COMMAND") or " ".join(["python -m bench", *sys.argv[1:]]),
        "started_at": contract.utc_now(),
        "plan": asdict(plan),
        "project": {"web_workers": project.WEB_WORKERS, "web_threads": project.WEB_THREADS},
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average_before": [round(value, 2) for value in load_before],
    }


def markdown(run: Run) -> str:
    setup = run.settings
    before, after = setup.get("load_average_before"), setup.get("load_average_after")
    lines = [
        "# qcompute benchmark",
        "",
        f"`{setup.get('command')}`, started {setup.get('started_at')}, {run.seconds:.0f} s in all, "
        f"{setup.get('cpus')} cores, load average {before} before and {after} after.",
        "",
        "## Load",
        "",
        report.format_table(report.LOAD_HEADERS, report.load_table(run.load), markdown=True),
        "",
        *(f"- {line}" for line in report.LEGEND),
        f"- Celery's `.get()` polls its result every {setup['plan']['celery_poll_seconds']} s.",
        "",
        "## Request sizes (one request each, fresh services; peak = VmHWM, child processes summed)",
        "",
        report.format_table(report.SIZE_HEADERS, report.size_table(run.sizes), markdown=True),
        "",
        "## History at scale (GET /api/history, pages of 20, one process's calls per page)",
        "",
        report.format_table(report.HISTORY_HEADERS, report.history_table(run.history), markdown=True),
        "",
        "## Cost per request (AWS request prices)",
        "",
        report.format_table(report.COST_HEADERS, report.cost_table(run.load), markdown=True),
        "",
        "### Where the money goes (each system's loads together, dearest first)",
        "",
        report.format_table(report.WHERE_HEADERS, report.where_table(run.load), markdown=True),
        "",
        "### Idle (no load)",
        "",
        report.format_table(report.IDLE_HEADERS, report.idle_table(run.idle), markdown=True),
        "",
        "### CPU per request (ms, children included)",
        "",
        report.format_table(report.cpu_headers(run.load), report.cpu_table(run.load), markdown=True),
        "",
        *(f"- {line}" for line in report.COST_LEGEND),
        "",
        f"Prices ({prices.SOURCE}; taken {prices.TAKEN}; free tiers ignored):",
        "",
        report.format_table(report.PRICE_HEADERS, [list(row) for row in prices.TABLE], markdown=True),
        "",
        "## Targets (LocalStack)",
        "",
        *(f"- {verdict.line()}" for verdict in targets.evaluate(run)),
        *(f"- FAILED: {failure}" for failure in run.failures),
        "",
        "![throughput and p50 latency against concurrent clients](bench.png)",
    ]
    return "\n".join(lines) + "\n"


def failed(run: Run) -> list[str]:
    """What makes the run fail: a phase that could not run; in a smoke test, also any request error."""
    problems = list(run.failures)
    if run.smoke:
        problems += [
            f"{r.backend} {r.system} {r.clients} clients: {r.errors} errors" for r in run.load if r.errors
        ]
        problems += [
            f"{s.backend} {s.size} integers: {s.status}" for s in run.sizes if s.status.startswith("failed")
        ]
    return problems


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    plan = chosen(
        args.smoke,
        args.backend,
        requests=args.requests,
        phase_seconds=args.phase_seconds,
        clients=args.clients,
        workers=args.workers,
        systems=args.systems,
        sizes=args.sizes,
        celery_poll_seconds=args.celery_poll_seconds,
        idle_seconds=args.idle_seconds,
        history_objects=args.history_objects,
    )
    out: Path = args.out.resolve()
    shutil.rmtree(out / "logs", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    setup = settings(plan, os.getloadavg())
    say(f"bench: {plan.describe()}")
    started = time.monotonic()
    run = run_plan(plan, out / "logs", say, smoke=args.smoke)
    run.settings = {**setup, "load_average_after": [round(value, 2) for value in os.getloadavg()]}
    try:
        plot.save(run, out / "bench.png")
    except Exception as error:  # noqa: BLE001 - the tables are worth keeping without the plot
        run.failures.append(f"plot: {type(error).__name__}: {error}")
    (out / "results.json").write_text(json.dumps(run.to_json(), indent=2) + "\n")
    (out / "results.md").write_text(markdown(run))
    print("\n" + report.render(run) + "\n")
    for verdict in targets.evaluate(run):
        print(verdict.line())
    print(
        f"\nbench: {time.monotonic() - started:.0f} s; results in {out}/results.md, results.json, bench.png"
    )
    problems = failed(run)
    for problem in problems:
        print(f"bench: FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("bench: interrupted; every process it started has been stopped", file=sys.stderr)
        sys.exit(130)
