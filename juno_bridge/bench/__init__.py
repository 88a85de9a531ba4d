"""`juno-bridge bench`: every way to run the same model, measured side by side in one run.

Each row is the median and 90th percentile of single-call times after warm-up, one intra-op thread.
The report prints what was compared, on what machine, and ratios against the alternatives; targets
are shown as met or missed, never asserted (shared machines are noisy).

One group per backend of the registry (``juno_bridge.backends()``), each in its own module with
``group_rows(settings)`` and ``group_targets(rows)``: onnx, torch, tf, python, remote (Triton, and
Dask workers); what they share is in ``juno_bridge.bench.common``. The sniper group measures juno-bridge
inside a SNiPER job (the default ONNX model; it needs SNIPER_PREFIX and says so without it); the model
group the trained default model in each of its forms, against its library's own Python API and against
the centroid baseline; the gpu group the default model on a CUDA device (it says what is missing without one).
"""
from __future__ import annotations

import importlib
import json
import time
from dataclasses import asdict
from pathlib import Path

from juno_bridge.backends import BackendInfo, backends
from juno_bridge.bench.common import Row, Settings, Target, find_row, format_target, machine_description

# The group that measures each backend, by the registry's name; a backend without one is not offered.
_GROUP_OF_BACKEND = {"onnxruntime": "onnx", "torch": "torch", "tf": "tf", "python": "python", "triton": "remote"}


# Groups that are not one backend's: name -> what they measure. sniper measures juno-bridge inside a
# framework, on the default backend; model the trained default model in every form (not the built-in
# models --model chooses).
_FRAMEWORK_GROUPS = {"sniper": "JunoBridgeAlg and the tensor store in SNiPER jobs (needs SNIPER_PREFIX)",
                     "model": "the trained default model in every built form, and the centroid: events/s from "
                              "Python and C++, the bridge against each library's own Python API",
                     "gpu": "the default model on a CUDA GPU: host, pinned and resident tensors, CUDA graphs, "
                            "against onnxruntime's Python API and io_binding (needs onnxruntime-gpu and torch for "
                            "CUDA)"}


def groups() -> dict[str, BackendInfo]:
    """Group name -> the backend it measures, in the registry's order, then the framework groups."""
    found = {_GROUP_OF_BACKEND[b.name]: b for b in backends() if b.name in _GROUP_OF_BACKEND}
    return {**found, **{name: backends()[0] for name in _FRAMEWORK_GROUPS}}


GROUPS = groups()


def describe(name: str) -> str:
    """One line for `bench --help`: what the group measures."""
    if name in _FRAMEWORK_GROUPS:
        return _FRAMEWORK_GROUPS[name]
    backend = GROUPS[name]
    return backend.description if name == backend.name else f"{backend.name}: {backend.description}"


def unavailable(backend: BackendInfo) -> str:
    """Why a group cannot run, and what installs its backend (from the registry)."""
    install = f"pip install 'juno-bridge[{backend.extra}]', then rebuild" if backend.extra else "rebuild the package"
    return f"the {backend.name} backend's plugin (libjuno_bridge_{backend.plugin}.so) was not built ({install})"


def format_report(rows: list[Row], targets: list[Target], quick: bool = False) -> str:
    lines = [f"machine: {machine_description()}", ""]
    width = max([len(r.method) for r in rows] + [len("method")]) + 1  # whole labels, never cut
    header = (f"{'group':<14}{'model':<6}{'B':>4}  {'method':<{width}}{'caller':<8}{'median us':>11}{'p90 us':>10}"
              f"{'time/(e)':>9}")
    lines += [header, "-" * len(header)]
    for r in rows:
        base = find_row(rows, r.model, r.batch, "(e)", "onnx") if r.group == "onnx" else None
        vs = f"{r.median_us / base.median_us:8.2f}x" if base else ""
        note = f"  {r.extra['note']}" if r.extra.get("note") else ""
        lines.append(f"{r.group:<14}{r.model:<6}{r.batch:>4}  {r.method:<{width}}{r.caller:<8}"
                     f"{r.median_us:>11.2f}{r.p90_us:>10.2f}{vs:>9}{note}")
    lines.append("median us, p90 us: microseconds per call; time/(e): the median over that of (e), onnxruntime's "
                 "own Python API (onnx rows; below 1 is faster)")
    if targets:
        lines += ["", "targets (ratios of medians, or microseconds where they say us):"]
        lines += [format_target(*t, judged=not quick) for t in targets]
    return "\n".join(lines)


def run(settings: Settings, groups: tuple[str, ...] = ("onnx",), json_path: str | None = None) -> str:
    rows: list[Row] = []
    targets: list[Target] = []
    for name in groups:
        backend = GROUPS[name]
        if not backend.available:
            print(f"  {name}: {unavailable(backend)}; no {name} rows")
            continue
        try:
            group = importlib.import_module(f"juno_bridge.bench.{name}")
            group_rows = group.group_rows(settings)
        except Exception as err:  # one group that cannot run does not cost the others' numbers
            print(f"  {name}: not measured: {str(err).splitlines()[0]}")
            continue
        rows += group_rows
        targets += group.group_targets(group_rows)
    report = format_report(rows, targets, quick=settings.is_quick)
    if json_path:
        Path(json_path).write_text(json.dumps({
            "machine": machine_description(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "settings": asdict(settings), "rows": [asdict(r) for r in rows],
            "targets": [dict(text=t, ratio=v, target=g, higher_is_better=h) for t, v, g, h in targets],
        }, indent=2))
    return report


__all__ = ["GROUPS", "Row", "Settings", "describe", "format_report", "groups", "run"]
