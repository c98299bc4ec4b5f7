"""An experiment's Scores dataset by dataset (the report's DatasetTables): each model on the test cycles of every
dataset it trained on together with others, and on the recipe's `[[evaluate]]` datasets it never trained on."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lungkd.core.cancel import CancelToken
from lungkd.core.data.sources import DataSpec, dataset_label, evaluation_dataset
from lungkd.core.errors import LungKDError
from lungkd.core.events import Event, EventCallback
from lungkd.core.features.cache import FeatureCache
from lungkd.core.features.cycle_sets import CycleSet
from lungkd.core.kd.jobs import FinishedRun
from lungkd.core.kd.report import DatasetScore, DatasetTable, ModelScores
from lungkd.core.kd.soft_labels import ensemble_logits
from lungkd.core.models.inference import load_saved_model, model_cycle_sets, predict_logits
from lungkd.core.workspace.layout import cache_folder

TEST_PART = "test split"


def ensemble_name(k: int) -> str:
    return f"ensemble of the {k} teachers"


def _row(model: str, logits: np.ndarray, labels: np.ndarray, datasets: np.ndarray, names: list[str],
         pooled: bool) -> ModelScores:
    return ModelScores(model=model, datasets=[DatasetScore.of(logits[datasets == name], labels[datasets == name])
                                              for name in names],
                       pooled=DatasetScore.of(logits, labels) if pooled else None)


def per_dataset_table(names: list[str], teachers: list[FinishedRun], students: list[FinishedRun],
                      teacher_logits: np.ndarray, labels: np.ndarray, datasets: np.ndarray) -> DatasetTable:
    """Every teacher, their ensemble and every student on each pooled dataset's test cycles. `teacher_logits` is
    (N, k, 4) over the pooled test split in dataset order, `datasets` each cycle's dataset; a student whose test
    logits cover other cycles (a recording its architecture could not read) is left out of the table."""
    k = teacher_logits.shape[1]
    models = [(t.name, teacher_logits[:, i]) for i, t in enumerate(teachers)]
    models.append((ensemble_name(k), ensemble_logits(teacher_logits, list(range(k)))))
    for run in students:
        if run.test_logits_path.is_file() and len(logits := np.load(run.test_logits_path)) == len(labels):
            models.append((run.name, logits))
    return DatasetTable(datasets=names, parts=[TEST_PART] * len(names),
                        rows=[_row(name, logits, labels, datasets, names, pooled=True) for name, logits in models])


class _Scorer:
    """The models' logits on one dataset, each architecture's inputs built once."""

    def __init__(self, index, cache: FeatureCache, cancel: CancelToken | None):
        self.index, self.cache, self.cancel = index, cache, cancel
        self._sets: dict[str, CycleSet | None] = {}

    def logits(self, run: FinishedRun) -> tuple[np.ndarray, np.ndarray]:
        model, card = load_saved_model(run.model_folder)
        key = card.inputs.model_dump_json()
        if key not in self._sets:
            self._sets[key] = model_cycle_sets(card, self.index, cache=self.cache, cancel=self.cancel).get("test")
        test = self._sets[key]
        if test is None:
            raise LungKDError("the dataset has no test cycles with usable audio.", path=self.index.root,
                              fix="check `lungkd data stats` for this folder.")
        return predict_logits(model, test, cancel=self.cancel).numpy(), test.labels.numpy()


def cross_dataset_table(evaluate: tuple[DataSpec, ...], teachers: list[FinishedRun], students: list[FinishedRun],
                        workspace: Path, emit: EventCallback, cancel: CancelToken | None = None) -> DatasetTable:
    """Every teacher, their ensemble and every student on each dataset of `evaluate`, none of which they trained
    on (core.data.sources.evaluation_dataset says which cycles)."""
    names, parts, columns = [], [], []
    for spec in evaluate:
        index, part = evaluation_dataset(spec, workspace)
        names.append(dataset_label(spec))
        parts.append(part)
        emit(Event("cross_dataset", "notice", f"Scoring the models on {names[-1]} ({part}), which they never "
                                              "trained on."))
        scorer = _Scorer(index, FeatureCache(cache_folder(workspace)), cancel)
        scored = {run.folder: scorer.logits(run) for run in teachers + students}
        labels = next(iter(scored.values()))[1]
        stacked = np.stack([scored[t.folder][0] for t in teachers], axis=1)
        ensemble = ensemble_logits(stacked, list(range(len(teachers))))
        columns.append({**{run.name: DatasetScore.of(*scored[run.folder]) for run in teachers + students},
                        ensemble_name(len(teachers)): DatasetScore.of(ensemble, labels)})
    models = [t.name for t in teachers] + [ensemble_name(len(teachers))] + [s.name for s in students]
    return DatasetTable(datasets=names, parts=parts,
                        rows=[ModelScores(model=m, datasets=[column[m] for column in columns]) for m in models])
