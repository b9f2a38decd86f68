"""Every benchmark in one command, one table: each figure beside its ceiling and the ratio.

Run: `python bench/run_all.py [--quick] [--json FILE] [--only NAME ...]`.

Each benchmark of bench/ runs in its own process, one after the other (they share the
2 cores, PostgreSQL and Redis: two at once would measure each other). A benchmark
prints its figures last as one line `RESULT [{name, value, unit, ceiling, ratio}, ...]`
(bench_support.emit_result); for one that does not (yet), its usual printed lines are
read instead. A ceiling is always measured in the same run as its figure (the plain
SDK for dispatch, a bare aiohttp handler for the webhooks, PostgreSQL writing the same
rows alone for the launch); the ratio is value / ceiling, null where none applies.
A benchmark that is not there (yet) is skipped with a line saying so.

`--quick` runs smaller sizes (under 10 minutes in all on the 2-core machine);
`--json FILE` writes the table as a list of {name, value, unit, ceiling, ratio}. The
load average is printed before and after each benchmark: a figure measured while the
machine was busy with something else is not a quiet figure.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_support import RESULT_PREFIX, load_average  # noqa: E402

Figure = dict[str, Any]


@dataclass(frozen=True)
class Bench:
    """One benchmark: its script, its arguments (full and quick), how to read its output."""

    name: str
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    read: Callable[[str], list[Figure]]  # when it prints no RESULT line
    needs: str | None = None  # an option its --help must list, else it is skipped
    timeout_full: float = 3600
    timeout_quick: float = 300


def figure(name: str, value: float, unit: str, ceiling: float | None = None) -> Figure:
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "ceiling": ceiling,
        "ratio": value / ceiling if ceiling else None,
    }


def _number(text: str) -> float:
    return float(text.replace(",", "").replace("\u202f", "").replace(" ", ""))


def _search(pattern: str, output: str) -> re.Match[str] | None:
    found = list(re.finditer(pattern, output, re.MULTILINE))
    return found[-1] if found else None


# --- readers of printed output, for benchmarks without a RESULT line ------------------------


def read_registry(output: str) -> list[Figure]:
    figures = []
    if m := _search(r"^import: .* = ([\d,]+) lignes/s", output):
        figures.append(figure("registry import", _number(m[1]), "rows/s"))
    if m := _search(r"^ré-import du même fichier: .* = ([\d,]+) lignes/s", output):
        figures.append(figure("registry re-import (unchanged)", _number(m[1]), "rows/s"))
    if m := _search(r"^comptage .*\(après VACUUM\): ([\d,]+) personnes, médiane (\d+) ms", output):
        figures.append(figure(f"audience count on {m[1]} people", _number(m[2]), "ms"))
    return figures


def read_dispatch(label: str) -> Callable[[str], list[Figure]]:
    def read(output: str) -> list[Figure]:
        figures = []
        if m := _search(r"^launch \(materialisation\) of ([\d,]+) messages: ([\d.]+) s", output):
            figures.append(figure(f"dispatch bench launch of {m[1]}", _number(m[2]), "s"))
        ceiling = _search(r"^ceiling: .*: ([\d,]+) SMS/s", output)
        if m := _search(r"^end to end: .*: ([\d,]+) msg/s", output):
            figures.append(
                figure(
                    f"dispatch end to end{label}",
                    _number(m[1]),
                    "msg/s",
                    _number(ceiling[1]) if ceiling else None,
                )
            )
        return figures

    return read


def read_inbound(output: str) -> list[Figure]:
    bare = _search(r"^aiohttp nu \(204, plafond\)\s+([\d,]+)", output)
    app = _search(r"^webhook campaigns\s+([\d,]+)\s+([\d,]+)\s+([\d.]+)\s+([\d.]+)", output)
    if not app:
        return []
    return [
        figure(
            "inbound webhook requests/s",
            _number(app[1]),
            "req/s",
            _number(bare[1]) if bare else None,
        ),
        figure("inbound webhook replies/s", _number(app[2]), "replies/s"),
        figure("inbound webhook p99", _number(app[4]), "ms"),
    ]


def read_classify(output: str) -> list[Figure]:
    figures = []
    if m := _search(r"^decide\(\):?\s+([\d,]+) replies/s", output):
        figures.append(figure("classification decide()", _number(m[1]), "replies/s"))
    if m := _search(r"^Rules alone:?\s+([\d,]+) replies/s", output):
        figures.append(figure("classification rules alone", _number(m[1]), "replies/s"))
    if m := _search(r"^Model alone:?\s+([\d,]+) replies/s", output):
        figures.append(figure("classification model alone", _number(m[1]), "replies/s"))
    if m := _search(r"^Training: median ([\d.]+) s", output):
        figures.append(figure("classification model training", _number(m[1]), "s"))
    return figures


def read_nothing(output: str) -> list[Figure]:
    return []


def receipts_script() -> str:
    """The receipts webhook benchmark, whatever its engineer named it."""
    found = sorted(p.name for p in HERE.glob("*receipt*.py"))
    return found[0] if found else "receipts_bench.py"


BENCHES = [
    Bench(
        "registry",
        "registry_bench.py",
        (),
        ("--rows", "20000", "--people", "200000", "--runs", "5"),
        read_registry,
    ),
    Bench("launch", "launch_probe.py", (), ("--quick",), read_nothing),
    Bench("dispatch", "dispatch_bench.py", (), ("--people", "5000"), read_dispatch("")),
    Bench(
        "dispatch with receipts",
        "dispatch_bench.py",
        ("--receipts",),
        ("--receipts", "--people", "5000"),
        read_dispatch(" with receipts"),
        needs="--receipts",
    ),
    Bench("inbound webhook", "inbound_bench.py", (), ("--requests", "5000"), read_inbound),
    Bench("receipts webhook", receipts_script(), (), ("--quick",), read_nothing, needs="--quick"),
    Bench("call cycle", "call_cycle_bench.py", (), ("--runs", "1"), read_nothing),
    Bench(
        "classification",
        "classify_bench.py",
        (),
        ("--replies", "2000", "--runs", "1", "--no-cv"),
        read_classify,
    ),
]


def results_of(output: str, read: Callable[[str], list[Figure]]) -> list[Figure]:
    """The benchmark's RESULT line if it printed one, else what its printed lines say."""
    lines = [line for line in output.splitlines() if line.startswith(RESULT_PREFIX)]
    if lines:
        rows = json.loads(lines[-1].removeprefix(RESULT_PREFIX))
        return [figure(r["name"], r["value"], r["unit"], r.get("ceiling")) for r in rows]
    return read(output)


def skip_reason(bench: Bench) -> str | None:
    path = HERE / bench.script
    if not path.exists():
        return f"bench/{bench.script} does not exist yet"
    if bench.needs:
        helped = subprocess.run(
            [sys.executable, str(path), "--help"], capture_output=True, text=True, cwd=ROOT
        )
        if bench.needs not in helped.stdout:
            return f"bench/{bench.script} has no {bench.needs} option yet"
    return None


@dataclass
class Outcome:
    bench: Bench
    figures: list[Figure]
    note: str  # skipped, failed, load averages


def run(bench: Bench, quick: bool, logs: Path) -> Outcome:
    reason = skip_reason(bench)
    if reason:
        print(f"[{bench.name}] skipped: {reason}", flush=True)
        return Outcome(bench, [], f"skipped: {reason}")
    args = bench.quick if quick else bench.full
    command = [sys.executable, str(HERE / bench.script), *args]
    before = load_average()
    print(f"[{bench.name}] {' '.join(command[1:])} (load {before})", flush=True)
    started = time.perf_counter()
    log = logs / f"{bench.name.replace(' ', '_')}.log"
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=bench.timeout_quick if quick else bench.timeout_full,
        )
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as exc:
        output, code = f"{exc.stdout or ''}{exc.stderr or ''}\n(timed out)", -1
    log.write_text(output if isinstance(output, str) else output.decode(errors="replace"))
    elapsed = time.perf_counter() - started
    figures = results_of(output, bench.read) if isinstance(output, str) else []
    after = load_average()
    note = f"load {before.split()[0]} -> {after.split()[0]}, {elapsed:.0f} s"
    if code != 0:
        note += f", exit {code} (log: {log})"
    if not figures:
        note += ", no figures read"
    print(f"[{bench.name}] {len(figures)} figures, {note}", flush=True)
    return Outcome(bench, figures, note)


def _value(value: float | None) -> str:
    if value is None:
        return ""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def print_table(outcomes: list[Outcome]) -> None:
    width = max([len(f["name"]) for o in outcomes for f in o.figures] + [20])
    print()
    print(f"{'figure':<{width}} {'value':>12} {'unit':<10} {'ceiling':>12} {'ratio':>6}")
    for outcome in outcomes:
        print(f"-- {outcome.bench.name} ({outcome.note})")
        for f in outcome.figures:
            ratio = f"{f['ratio']:.2f}" if f["ratio"] is not None else ""
            print(
                f"{f['name']:<{width}} {_value(f['value']):>12} {f['unit']:<10} "
                f"{_value(f['ceiling']):>12} {ratio:>6}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, under 10 minutes")
    parser.add_argument("--json", type=Path, help="write the figures there as JSON")
    parser.add_argument(
        "--only", nargs="*", default=None, help=f"among: {', '.join(b.name for b in BENCHES)}"
    )
    args = parser.parse_args()
    chosen = [b for b in BENCHES if args.only is None or b.name in args.only]
    # The system's temporary folder, not a fixed path: the logs are this run's own.
    logs = Path(tempfile.mkdtemp(prefix="campaigns-bench-"))
    print(f"run_all{' --quick' if args.quick else ''}: load average {load_average()}, logs {logs}")
    started = time.perf_counter()
    outcomes = [run(bench, args.quick, logs) for bench in chosen]
    print_table(outcomes)
    print(f"\n{time.perf_counter() - started:.0f} s in all; load average now {load_average()}")
    figures = [f for o in outcomes for f in o.figures]
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"written: {args.json}")
    failed = [o for o in outcomes if "exit" in o.note or "no figures" in o.note]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
