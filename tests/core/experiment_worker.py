"""Run by test_experiment.py as a real subprocess: runs an experiment recipe, one JSON event per line.

Usage: python experiment_worker.py RECIPE.toml WORKSPACE
"""
import sys
from pathlib import Path

from lungkd.core.kd.executors import InProcessExecutor
from lungkd.core.kd.experiment import Experiment
from lungkd.core.recipes import load_experiment


def main(recipe: str, workspace: str) -> None:
    Experiment(load_experiment(recipe), Path(workspace), on_event=lambda e: print(e.to_json(), flush=True),
               executor=InProcessExecutor()).run()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
