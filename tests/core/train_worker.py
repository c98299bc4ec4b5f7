"""Run by test_training.py as a real subprocess: trains a tiny CNN6 on saved features, resumable.

Usage: python train_worker.py FEATURES.npz RUN_DIR EPOCHS
Prints `EPOCH n` after every finished epoch and a final JSON line with the history.
"""
import json
import sys
from dataclasses import asdict

import numpy as np
import torch

from lungkd.core.features.cycle_sets import CycleSet
from lungkd.core.models.registry import create_model
from lungkd.core.recipes import RunSettings, TrainConfig
from lungkd.core.training.trainer import Trainer


def main(features_path: str, run_dir: str, epochs: int) -> None:
    data = np.load(features_path)
    train = CycleSet(torch.from_numpy(data["train_x"]), torch.from_numpy(data["train_y"]))
    test = CycleSet(torch.from_numpy(data["test_x"]), torch.from_numpy(data["test_y"]))
    config = TrainConfig(epochs=epochs, batch_size=8, lr=1e-3, weight_averaging=0.5)

    def progress(p):
        if p.stage == "epoch":
            print(f"EPOCH {p.epoch}", flush=True)

    torch.manual_seed(0)
    trainer = Trainer(config, seed=1, settings=RunSettings(deterministic=True), run_dir=run_dir, on_progress=progress)
    result = trainer.fit(create_model("cnn6", size="tiny"), train, test)
    timeless = [{k: v for k, v in asdict(r).items() if k not in ("seconds", "data_seconds")} for r in result.history]
    print(json.dumps({"history": timeless, "selected": result.selected_epoch}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
