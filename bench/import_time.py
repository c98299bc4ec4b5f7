"""How long the listing commands take from the shell, beside `import torch` alone, in one run.

    python -m bench.import_time [--rounds 5]

Each command runs in a fresh interpreter (`python -m lungkd.core.cli ...`, output discarded); the rounds
alternate the commands and medians are printed. Then `python -X importtime` of `lungkd recipes`: the modules
that cost most, and whether torch was among them.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = (["runs"], ["recipes"], ["models"], ["--version"], ["--help"])


def wall_seconds(arguments: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(arguments, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def slowest_imports(command: list[str], count: int = 8) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) of the top-level imports `python -X importtime` lists for a command."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "lungkd.core.cli", *command], text=True,
                         capture_output=True)
    rows = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line or "cumulative" in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        if not name.startswith("  "):  # imported by the command itself, not by another module
            rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, Python {sys.version.split()[0]}")
    runs = {" ".join(c): [sys.executable, "-m", "lungkd.core.cli", *c] for c in COMMANDS}
    runs["python -c 'import torch'"] = [sys.executable, "-c", "import torch"]
    runs["python -c 'pass'"] = [sys.executable, "-c", "pass"]
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, arguments in runs.items():
            times[name].append(wall_seconds(arguments))
    torch_s = statistics.median(times["python -c 'import torch'"])
    print(f"\nmedian of {args.rounds} rounds, load {os.getloadavg()[0]:.1f} at the end")
    print(f"{'command':<28}{'wall s':>8}{'/ import torch':>16}")
    for name, values in times.items():
        print(f"{name:<28}{statistics.median(values):>8.2f}{statistics.median(values) / torch_s:>16.2f}")
    print("\npython -X importtime -m lungkd.core.cli recipes: the costliest imports (cumulative)")
    for microseconds, name in slowest_imports(["recipes"]):
        print(f"{microseconds / 1000:>10.0f} ms  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
