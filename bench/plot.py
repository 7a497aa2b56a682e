"""A PNG of a run: throughput and p50 latency against concurrent clients, per system, per backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.results import SYSTEMS, LoadRow, Run

STYLES = {"raw": "k--", "project": "C0-", "seed": "C3-.", "celery": "C2:"}


def _label(system: str, workers: int | None) -> str:
    return SYSTEMS[system] + ("" if workers is None else f", {workers} worker{'s' * (workers > 1)}")


def _draw_backend(top: Any, bottom: Any, backend: str, rows: list[LoadRow]) -> None:
    from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter

    lines = sorted(
        {(r.system, r.workers) for r in rows}, key=lambda k: (list(SYSTEMS).index(k[0]), k[1] or 0)
    )
    for system, workers in lines:
        series = sorted(
            (r for r in rows if (r.system, r.workers) == (system, workers)), key=lambda r: r.clients
        )
        clients = [r.clients for r in series]
        style = {"label": _label(system, workers), "marker": "o" if (workers or 1) == 1 else "s"}
        top.plot(clients, [r.rps for r in series], STYLES.get(system, "-"), **style)
        bottom.plot(clients, [r.p50_ms for r in series], STYLES.get(system, "-"), **style)
    top.set(title=f"{backend}: throughput", ylabel="requests/s")
    top.set_ylim(bottom=0)
    bottom.set(title=f"{backend}: p50 latency", ylabel="ms (log)", yscale="log")
    # Ticks at 1, 2 and 5 of each decade, written 50 rather than 5 x 10^1.
    bottom.yaxis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5)))
    bottom.yaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    bottom.yaxis.set_minor_formatter(NullFormatter())
    ticks = sorted({r.clients for r in rows})
    for axis in (top, bottom):
        axis.set_xscale("log", base=2)
        axis.set_xticks(ticks, [str(tick) for tick in ticks])
        axis.set_xlabel("concurrent clients")
        axis.grid(True, which="both", alpha=0.3)


def save(run: Run, path: Path) -> None:
    # Imported here: the project's test environment has no matplotlib, and Agg needs no display.
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    backends = [b for b in run.backends if any(r.backend == b and r.completed for r in run.load)]
    if not backends:
        return
    figure, axes = pyplot.subplots(2, len(backends), figsize=(6.5 * len(backends), 8), squeeze=False)
    for column, backend in enumerate(backends):
        rows = [r for r in run.load if r.backend == backend and r.completed]
        _draw_backend(axes[0][column], axes[1][column], backend, rows)
    figure.suptitle("One run: qcompute, the emulator's ceiling,\na seed-style baseline and Celery")
    # One legend below the plots, where it hides no line.
    legend: dict[str, Any] = {}
    for axis in axes[0]:
        handles, labels = axis.get_legend_handles_labels()
        legend.update(zip(labels, handles, strict=True))
    figure.legend(legend.values(), legend.keys(), loc="lower center", ncol=3, fontsize="small")
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")  # the legend whole, however wide
    pyplot.close(figure)
