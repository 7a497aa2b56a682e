"""Replay the worker fleet's scaling (qcompute/deploy/fleet.py) against a burst of requests, beside fixed
fleets: how long the backlog lasts, how old the oldest waiting request gets, what the hosts cost.

    scripts/fleet-sim [--requests 100000] [--arrival-seconds 60] [--hosts 0..4] [--instance-type t3.small]
                      [--web-workers N] [--latency-seconds S] [--idle-minutes M] [--minutes 180]
                      [--launch-seconds 45] [--metric-delay-seconds 60] [--out docs/performance]

A deterministic model in one-second steps. The policy's own figures come from fleet.py (the time per
request, the target, the warm-up, the drain hook, the alarms' periods); what AWS does around them is
the assumptions below, each with where it is documented. The queue is served first in, first out
(SQS standard queues are not, so the real oldest age can be worse), one request per worker at a time
(receive batches ignored), and the web host's workers count in every fleet but not in its cost.
Every request is admitted: the frontend's admission control (MAX_BACKLOG, which `up` sets to MAX
hosts x the target with a fleet, fleet.backlog_limit) would refuse those beyond it with a 503 for the
client to retry, so a burst larger than that waits at the clients rather than in the queue.

Assumptions:
- Launch: LAUNCH_SECONDS from a new desired capacity to the host being InService (EC2 Auto Scaling
  User Guide, "Amazon EC2 Auto Scaling instance lifecycle": Pending, then InService; EC2 User Guide,
  "Amazon EC2 instance state changes": pending, then running, no figure given; about 16 s pending to
  running and 26 s for a whole cold launch measured by github.com/brevdev/ec2-coldboot-research),
  with room for Auto Scaling to act. Its workers start fleet.WARMUP_SECONDS later: the project's
  estimate of boot, Docker install and the worker image build, the time AWS's instance warm-up
  describes ("Set the default instance warmup": from InService until ready).
- Metrics: one datapoint a minute (SQS Developer Guide, "Monitoring Amazon SQS queues using
  CloudWatch": metrics pushed at one-minute intervals; group metrics at the 1Minute granularity fleet.py
  enables), readable METRIC_DELAY_SECONDS after its minute ends; a gauge is read once a minute, so its
  Sum, Maximum and Average are that reading. GroupInServiceInstances is its average over the minute.
  Alarms are evaluated at each minute's start (CloudWatch User Guide, "Using Amazon CloudWatch
  alarms", "Evaluating an alarm").
- Target tracking: the alarms Auto Scaling makes for it (EC2 Auto Scaling User Guide, "Target tracking
  scaling policies"; they show in CloudWatch as AlarmHigh, 3 datapoints within 3 minutes above the
  target, and AlarmLow, 15 datapoints within 15 minutes below 90 % of it). Its new capacity is
  proportional, capacity x metric / target, with the capacity the metric was measured against: the
  visible messages over the target, rounded up. It never removes a host on the way out nor adds one on
  the way in; no data (no host in service: m1 / m2 has no value) means no scaling.
- Alarm actions: an alarm whose action is a scaling policy invokes it again each minute it stays in
  ALARM (CloudWatch User Guide, "Alarm actions" / "Using Amazon CloudWatch alarms"), so the wake and
  idle step policies set their exact capacity every minute while alarmed.
- Scale-in: hosts not yet working go first, then the newest. AWS's default termination policy
  balances zones, then prefers the oldest launch template, then picks at random among the rest; with
  one template and identical hosts which one goes changes no figure here. A leaving host stops taking
  work at once, and goes when its drain watcher has seen it
  (workerhost.POLL_SECONDS) and an idle worker's warm stop ended its long poll (STOP_SECONDS), never
  later than fleet.DRAIN_SECONDS (the hook's heartbeat timeout).
- Cost: per-second billing while the host runs, one minute at least (EC2 On-Demand pricing page,
  "Per Second Billing"), counted from InService to the end of its drain; the hourly prices are the
  README's (on-demand, us-east-1, Linux), without the public IPv4 address and the volume.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from qcompute.deploy import instance, workerhost
from qcompute.deploy.fleet import (
    DEFAULT_IDLE_MINUTES,
    DEFAULT_INSTANCE_TYPE,
    DEFAULT_LATENCY_SECONDS,
    DRAIN_SECONDS,
    PERIOD_SECONDS,
    SECONDS_PER_REQUEST,
    WARMUP_SECONDS,
    Fleet,
    parse_hosts,
    target_backlog,
)

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_SECONDS = 45
METRIC_DELAY_SECONDS = 60
SCALE_OUT_DATAPOINTS = 3
SCALE_IN_DATAPOINTS = 15
SCALE_IN_FRACTION = 0.9
# The worker's default LONG_POLL_SECONDS (services/worker/settings.py): an idle worker's warm stop
# waits for its receive call to return.
STOP_SECONDS = 10
BILLED_AT_LEAST_SECONDS = 60
# The README's worker host prices ("Worker fleet"): vCPUs (one worker each), dollars per hour.
INSTANCE_TYPES = {
    "t3.small": (2, 0.0208),
    "t3.medium": (2, 0.0416),
    "t3.large": (2, 0.0832),
    "c7i.large": (2, 0.08925),
}
POLICY, ALWAYS_MAX, WEB_ONLY = "policy", "max", "web"


@dataclass(frozen=True)
class Burst:
    """`requests` arriving evenly over `seconds` from `start`, then nothing."""

    requests: int = 100_000
    seconds: int = 60
    start: int = 0

    def arriving(self, second: int) -> int:
        if not self.start <= second < self.start + self.seconds:
            return 0
        done = second - self.start
        return self.requests * (done + 1) // self.seconds - self.requests * done // self.seconds

    @property
    def end(self) -> int:
        return self.start + self.seconds


@dataclass(frozen=True)
class Setup:
    """A fleet and the AWS timings it meets; `scaling` is POLICY, ALWAYS_MAX or WEB_ONLY."""

    scaling: str = POLICY
    min_hosts: int = 0
    max_hosts: int = 4
    instance_type: str = DEFAULT_INSTANCE_TYPE
    web_workers: int = instance.DEFAULT_WORKERS
    latency_seconds: int = DEFAULT_LATENCY_SECONDS
    idle_minutes: int = DEFAULT_IDLE_MINUTES
    launch_seconds: int = LAUNCH_SECONDS
    metric_delay_seconds: int = METRIC_DELAY_SECONDS

    @property
    def workers_per_host(self) -> int:
        return INSTANCE_TYPES[self.instance_type][0]

    @property
    def price_per_hour(self) -> float:
        return INSTANCE_TYPES[self.instance_type][1]

    @property
    def target(self) -> float:
        fleet = Fleet(self.min_hosts, self.max_hosts, self.instance_type, False, self.latency_seconds)
        return target_backlog(fleet, self.workers_per_host)

    @property
    def drain_seconds(self) -> int:
        return min(DRAIN_SECONDS, workerhost.POLL_SECONDS + STOP_SECONDS)

    def label(self) -> str:
        if self.scaling == ALWAYS_MAX:
            return f"{self.max_hosts} hosts always on"
        if self.scaling == WEB_ONLY:
            return "web host only"
        return f"policy {self.min_hosts}..{self.max_hosts}"


@dataclass
class Host:
    launched: int
    in_service: int
    working: int
    leaving: int | None = None
    gone: int | None = None

    def state(self, second: int) -> str:
        if self.gone is not None and second >= self.gone:
            return "gone"
        if self.leaving is not None:
            return "draining"
        if second < self.in_service:
            return "pending"
        return "working" if second >= self.working else "booting"


@dataclass(frozen=True)
class Datapoint:
    """One minute of the metrics the alarms read, as CloudWatch would hold them."""

    minute: int
    visible: int
    in_flight: int
    desired_max: int
    in_service_average: float


@dataclass
class Run:
    """What a fleet did, second by second, and the scaling actions it took."""

    setup: Setup
    burst: Burst
    seconds: list[int] = field(default_factory=list)
    backlog: list[int] = field(default_factory=list)
    oldest_age: list[int] = field(default_factory=list)
    desired: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    in_service: list[int] = field(default_factory=list)
    working: list[int] = field(default_factory=list)
    draining: list[int] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    hosts: list[Host] = field(default_factory=list)
    # (second, which action, the desired capacity it set)
    actions: list[tuple[int, str, int]] = field(default_factory=list)


class Alarm:
    """The last `needed` datapoints with a value all breach; no value is skipped (`missing`)."""

    def __init__(self, needed: int) -> None:
        self.needed = needed

    def alarmed(self, values: list[bool | None]) -> bool:
        present = [value for value in values if value is not None][-self.needed :]
        return len(present) == self.needed and all(present)


def _ceil(value: float) -> int:
    # 600.0000001 hosts is 600: the ratio's floating-point noise must not add one.
    return math.ceil(round(value, 6))


class Simulation:
    def __init__(self, setup: Setup, burst: Burst) -> None:
        self.setup, self.burst = setup, burst
        self.run = Run(setup, burst)
        fixed = {ALWAYS_MAX: setup.max_hosts, WEB_ONLY: 0}.get(setup.scaling)
        self.desired = setup.min_hosts if fixed is None else fixed
        # A fixed fleet is up before the burst.
        for _ in range(fixed or 0):
            self.run.hosts.append(Host(launched=-WARMUP_SECONDS, in_service=0, working=0))
        self.queue: deque[list[int]] = deque()  # [arrival second, requests]
        self.credit = 0.0
        self.points: list[Datapoint] = []
        self.minute_desired: list[int] = []
        self.minute_in_service: list[int] = []

    # --- the group ------------------------------------------------------------------------------

    def _live(self, second: int) -> list[Host]:
        return [host for host in self.run.hosts if host.state(second) in ("pending", "booting", "working")]

    def _set_desired(self, second: int, why: str, wanted: int) -> None:
        wanted = min(max(wanted, self.setup.min_hosts), self.setup.max_hosts)
        self.run.actions.append((second, why, wanted))
        self.desired = wanted

    def _reconcile(self, second: int) -> None:
        live = self._live(second)
        for _ in range(self.desired - len(live)):
            in_service = second + self.setup.launch_seconds
            self.run.hosts.append(Host(second, in_service, in_service + WARMUP_SECONDS))

        # Hosts not yet working go first, then the newest.
        def order(host: Host) -> tuple[bool, int]:
            return host.state(second) != "working", host.launched

        for host in sorted(live, key=order, reverse=True)[: max(0, len(live) - self.desired)]:
            host.leaving = second
            host.gone = second + self.setup.drain_seconds

    # --- the alarms ------------------------------------------------------------------------------

    def _readable(self, second: int) -> list[Datapoint]:
        delay = self.setup.metric_delay_seconds
        return [p for p in self.points if (p.minute + 1) * PERIOD_SECONDS + delay <= second]

    def _evaluate(self, second: int) -> None:
        setup, points = self.setup, self._readable(second)
        # The idle alarm: no data is an empty queue (TreatMissingData breaching), so the minutes before
        # the first readable one, an idle past, breach.
        idle = [True] * setup.idle_minutes + [p.visible + p.in_flight < 0.5 for p in points]
        if Alarm(setup.idle_minutes).alarmed(idle):
            self._set_desired(second, "idle", setup.min_hosts)
        # The wake alarm: IF(FILL(m2, 0) == 0, m1, 0) > 0.5 on its last minute (missing: not breaching).
        if points and (points[-1].visible if points[-1].desired_max == 0 else 0) > 0.5:
            self._set_desired(second, "wake", 1)
        # Target tracking on m1 / m2: no host in service, no value.
        ratios = [p.visible / p.in_service_average if p.in_service_average else None for p in points]
        if not any(ratio is not None for ratio in ratios):
            return
        last = next(p for p in reversed(points) if p.in_service_average)
        wanted = _ceil(last.visible / setup.target)
        high = [None if r is None else r > setup.target for r in ratios]
        low = [None if r is None else r < SCALE_IN_FRACTION * setup.target for r in ratios]
        if Alarm(SCALE_OUT_DATAPOINTS).alarmed(high) and wanted > self.desired:
            self._set_desired(second, "scale-out", wanted)
        elif Alarm(SCALE_IN_DATAPOINTS).alarmed(low) and wanted < self.desired:
            self._set_desired(second, "scale-in", wanted)

    # --- the queue -------------------------------------------------------------------------------

    def _serve(self, second: int, workers: int) -> int:
        """Answer what `workers` answer in a second, oldest first; return how many."""
        self.credit += workers / SECONDS_PER_REQUEST
        answered = 0
        while self.queue and self.credit >= 1:
            cohort = self.queue[0]
            taken = min(cohort[1], int(self.credit))
            cohort[1] -= taken
            self.credit -= taken
            answered += taken
            if cohort[1] == 0:
                self.queue.popleft()
        if not self.queue:
            # Idle workers bank nothing.
            self.credit = 0.0
        return answered

    def step(self, second: int) -> None:
        setup, run = self.setup, self.run
        if setup.scaling == POLICY and second > 0 and second % PERIOD_SECONDS == 0:
            self._evaluate(second)
        self._reconcile(second)
        arriving = self.burst.arriving(second)
        if arriving:
            self.queue.append([second, arriving])
        states = [host.state(second) for host in run.hosts]
        working = states.count("working")
        answered = self._serve(second, working * setup.workers_per_host + setup.web_workers)
        backlog = sum(cohort[1] for cohort in self.queue)
        run.seconds.append(second)
        run.backlog.append(backlog)
        run.oldest_age.append(second - self.queue[0][0] if self.queue else 0)
        run.desired.append(self.desired)
        run.pending.append(states.count("pending"))
        run.in_service.append(states.count("booting") + working)
        run.working.append(working)
        run.draining.append(states.count("draining"))
        run.answered.append(answered)
        self.minute_desired.append(self.desired)
        self.minute_in_service.append(run.in_service[-1])
        if second % PERIOD_SECONDS == PERIOD_SECONDS - 1:
            self.points.append(
                Datapoint(
                    minute=second // PERIOD_SECONDS,
                    visible=backlog,
                    # Requests a worker holds this second.
                    in_flight=min(answered, working * setup.workers_per_host + setup.web_workers),
                    desired_max=max(self.minute_desired),
                    in_service_average=sum(self.minute_in_service) / len(self.minute_in_service),
                )
            )
            self.minute_desired, self.minute_in_service = [], []


def simulate(setup: Setup, burst: Burst, seconds: int) -> Run:
    """Run `setup` against `burst` for `seconds` one-second steps from 0."""
    simulation = Simulation(setup, burst)
    for second in range(seconds):
        simulation.step(second)
    return simulation.run


# --- what a run comes to --------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    label: str
    drained_at: int | None
    peak_oldest_age: int
    instance_hours: float
    cost: float
    peak_hosts: int
    scales: bool
    back_to_min_at: int | None


def drained_at(run: Run) -> int | None:
    """The first second after the last arrival with nothing waiting; None if never."""
    after = zip(run.seconds[run.burst.end :], run.backlog[run.burst.end :], strict=True)
    return next((second for second, backlog in after if not backlog), None)


def instance_seconds(run: Run) -> int:
    horizon = len(run.seconds)
    billed = 0
    for host in run.hosts:
        start = max(host.in_service, 0)
        end = min(horizon, host.gone if host.gone is not None else horizon)
        if end > start:
            billed += max(end - start, BILLED_AT_LEAST_SECONDS)
    return billed


def back_to_min_at(run: Run) -> int | None:
    """When the group, having grown, is back at MIN with no host draining; None if not."""
    grew = next((s for s, d in zip(run.seconds, run.desired, strict=True) if d > run.setup.min_hosts), None)
    if grew is None:
        return None
    for second in run.seconds[grew:]:
        hosts = run.pending[second] + run.in_service[second] + run.draining[second]
        if run.desired[second] == run.setup.min_hosts and hosts == run.setup.min_hosts:
            return second
    return None


def summarize(run: Run) -> Summary:
    hours = instance_seconds(run) / 3600
    hosts = [p + i + d for p, i, d in zip(run.pending, run.in_service, run.draining, strict=True)]
    return Summary(
        label=run.setup.label(),
        drained_at=drained_at(run),
        peak_oldest_age=max(run.oldest_age),
        instance_hours=hours,
        cost=hours * run.setup.price_per_hour,
        peak_hosts=max(hosts),
        scales=run.setup.scaling == POLICY,
        back_to_min_at=back_to_min_at(run),
    )


def _clock(second: int | None) -> str:
    return "never" if second is None else f"{second // 60}:{second % 60:02d}"


def table(summaries: list[Summary], setup: Setup, burst: Burst, seconds: int) -> str:
    """The summaries as a Markdown table, headed by what was simulated."""
    head = (
        f"{burst.requests:,} requests over {burst.seconds} s, then none; {seconds // 60} min simulated. "
        f"{setup.instance_type} worker hosts ({setup.workers_per_host} workers, "
        f"${setup.price_per_hour}/h), the web host's {setup.web_workers} worker(s) in every row, "
        f"{SECONDS_PER_REQUEST} s per request per worker; target {setup.target:g} visible per host, "
        f"warm-up {WARMUP_SECONDS} s, launch {setup.launch_seconds} s, metrics readable "
        f"{setup.metric_delay_seconds} s after their minute, idle after {setup.idle_minutes} min."
    )
    rows = [
        "| fleet | backlog drained at (min:s) | peak oldest age (min:s) | instance-hours | cost | "
        "peak hosts | back to MIN at |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in summaries:
        rows.append(
            f"| {s.label} | {_clock(s.drained_at)} | {_clock(s.peak_oldest_age)} | {s.instance_hours:.2f} | "
            f"${s.cost:.3f} | {s.peak_hosts} | {_clock(s.back_to_min_at) if s.scales else '-'} |"
        )
    return head + "\n\n" + "\n".join(rows) + "\n"


# --- the plot ---------------------------------------------------------------------------------------

STYLES = {POLICY: "C0-", ALWAYS_MAX: "C3--", WEB_ONLY: "k:"}


def save_plot(runs: list[Run], path: Path) -> None:
    # Imported here: the project's test environment has no matplotlib, and Agg needs no display.
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.ticker import MaxNLocator

    figure, (backlog, hosts, age) = pyplot.subplots(3, 1, figsize=(9, 10), sharex=True)
    for run in runs:
        minutes = [second / 60 for second in run.seconds]
        style: dict[str, Any] = {"label": run.setup.label()}
        line = STYLES[run.setup.scaling]
        backlog.plot(minutes, run.backlog, line, **style)
        hosts.plot(minutes, run.in_service, line, **style)
        age.plot(minutes, [a / 60 for a in run.oldest_age], line, **style)
        if run.setup.scaling == POLICY:
            name = run.setup.label()
            hosts.plot(minutes, run.desired, "C1-", alpha=0.7, linewidth=1, label=f"{name}: desired")
            hosts.plot(minutes, run.working, "C2-.", linewidth=1, label=f"{name}: working")
    backlog.set(title="Visible requests (the backlog)", ylabel="requests")
    hosts.set(title="Worker hosts in service (and the policy's desired capacity)", ylabel="hosts")
    age.set(title="Oldest waiting request (first in, first out)", ylabel="minutes", xlabel="minutes")
    hosts.yaxis.set_major_locator(MaxNLocator(integer=True))
    for axis in (backlog, hosts, age):
        axis.set_ylim(bottom=0)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize="small", loc="center right")
    figure.suptitle("The worker fleet's scaling against a burst, beside fixed fleets (bench/fleet_sim.py)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


# --- the command ------------------------------------------------------------------------------------


def compare(setup: Setup, burst: Burst, seconds: int) -> list[Run]:
    """The policy, MAX hosts always on, and the web host alone, against the same burst."""
    return [
        simulate(setup, burst, seconds),
        simulate(replace(setup, scaling=ALWAYS_MAX), burst, seconds),
        simulate(replace(setup, scaling=WEB_ONLY), burst, seconds),
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/fleet-sim", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=Burst.requests, help="the burst's size")
    parser.add_argument("--arrival-seconds", type=int, default=Burst.seconds, help="over how long it arrives")
    parser.add_argument("--hosts", default=f"{Setup.min_hosts}..{Setup.max_hosts}", help="MIN..MAX")
    parser.add_argument("--instance-type", choices=INSTANCE_TYPES, default=Setup.instance_type)
    parser.add_argument("--web-workers", type=int, default=Setup.web_workers, help="the web host's workers")
    parser.add_argument("--latency-seconds", type=int, default=Setup.latency_seconds)
    parser.add_argument("--idle-minutes", type=int, default=Setup.idle_minutes)
    parser.add_argument("--minutes", type=int, default=180, help="how long to simulate")
    parser.add_argument("--launch-seconds", type=int, default=Setup.launch_seconds)
    parser.add_argument("--metric-delay-seconds", type=int, default=Setup.metric_delay_seconds)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/performance", help="for the .md and .png")
    args = parser.parse_args(argv)
    try:
        low, high = parse_hosts(args.hosts)
    except ValueError as error:
        parser.error(f"--hosts {error}")
    if args.requests < 0 or args.arrival_seconds < 1 or args.web_workers < 0 or args.minutes < 1:
        parser.error("--requests, --web-workers must be >= 0; --arrival-seconds, --minutes >= 1")
    setup = Setup(
        min_hosts=low,
        max_hosts=high,
        instance_type=args.instance_type,
        web_workers=args.web_workers,
        latency_seconds=args.latency_seconds,
        idle_minutes=args.idle_minutes,
        launch_seconds=args.launch_seconds,
        metric_delay_seconds=args.metric_delay_seconds,
    )
    burst, seconds = Burst(args.requests, args.arrival_seconds), args.minutes * 60
    runs = compare(setup, burst, seconds)
    text = table([summarize(run) for run in runs], setup, burst, seconds)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    command = "scripts/fleet-sim" + "".join(f" {arg}" for arg in argv)
    (args.out / "fleet-sim.md").write_text(
        f"# Worker fleet scaling, simulated\n\n`{command}` (bench/fleet_sim.py: a model, not a measurement; "
        f"its assumptions and their AWS sources are in its docstring). The policy's scaling actions: "
        f"{_actions(runs[0])}.\n\n{text}\n![backlog, hosts and oldest age over time](fleet-sim.png)\n"
    )
    save_plot(runs, args.out / "fleet-sim.png")
    print(f"wrote {args.out / 'fleet-sim.md'} and {args.out / 'fleet-sim.png'}")
    return 0


def _actions(run: Run) -> str:
    """The policy's changes of desired capacity, e.g. "2:00 wake -> 1"."""
    changes, desired = [], run.setup.min_hosts
    for second, why, wanted in run.actions:
        if wanted != desired:
            changes.append(f"{_clock(second)} {why} -> {wanted}")
            desired = wanted
    return ", ".join(changes) or "none"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
