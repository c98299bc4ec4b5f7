"""Rebuild the shipped demo model (resources/models/demo-cnn6) with LungKD's own method, in one command.

    make demo-model        (or: python packaging/build_demo_model.py [--workspace DIR])

Runs the shipped recipe `demo-model` (tiny CNN6 teachers on a generated dataset, distilled into a tiny
CNN6 student), then copies its best distilled student into resources/models/demo-cnn6, with a card that
says how it was made: the recipe, the data it was trained on, its teachers and its test Scores beside
theirs. The Studio analyses a newcomer's first recordings with it.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from lungkd.core.kd.executors import InProcessExecutor
from lungkd.core.kd.experiment import Experiment
from lungkd.core.models.card import read_model_card, write_model_card
from lungkd.core.recipes import load_experiment, shipped_recipes_folder
from lungkd.core.storage import atomic_folder
from lungkd.core.workspace.layout import MODEL_FOLDER, student_run_folder

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "resources" / "models" / "demo-cnn6"
RECIPE = "demo-model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, help="where to train (default: a temporary folder)")
    args = parser.parse_args()
    recipe = load_experiment(shipped_recipes_folder() / f"{RECIPE}.toml")
    with tempfile.TemporaryDirectory() as tmp:
        workspace = args.workspace or Path(tmp) / "ws"
        experiment = Experiment(recipe, workspace, on_event=lambda e: e.kind in ("started", "finished") and e.run
                                and print(f"[{e.stage}] {e.run} {e.kind}", flush=True), executor=InProcessExecutor())
        report = experiment.run()
        best = max((s for s in report.students if s.role == "student"), key=lambda s: s.score or 0.0)
        source = student_run_folder(experiment.folder, "student", best.arch, best.labels, best.seed)
        with atomic_folder(TARGET) as folder:
            shutil.copytree(source / MODEL_FOLDER, folder, dirs_exist_ok=True)
            # The test logits are not shipped, and a shipped model belongs to no experiment of the user's
            # workspace (the picker names it by its folder).
            card = read_model_card(folder).replace(
                test_logits_sha256=None, experiment=None,
                description=f"Demo: a tiny CNN6 distilled ({best.labels}) from {recipe.teachers.k} tiny CNN6 teachers, "
                            "trained on synthetic recordings only. A demonstration of the method, not a diagnostic "
                            "model.",
                made_by={"command": "make demo-model", "experiment": recipe.name,
                         "recipe": recipe.model_dump(mode="json"),
                         "teachers": [{"seed": t.seed, "test_score": t.score} for t in report.teachers],
                         "ensemble_test_score": report.ensembles[-1].score,
                         "hard_label_twin_test_score": report.student_groups[0].baseline.mean,
                         "test_cycles": report.test_cycles, "train_cycles": report.train_cycles})
            write_model_card(folder, card)
    print(f"student seed {best.seed}: test Score {best.score:.2f}; written to {TARGET}")


if __name__ == "__main__":
    main()
