"""`lungkd` on the command line: the headless face of the engine."""
from __future__ import annotations

import argparse
import csv
import io
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lungkd.core.cancel import Cancelled, CancelToken
from lungkd.core.errors import LungKDError
from lungkd.core.labels import CLASS_NAMES
from lungkd.core.pool import numpy_blas_on_one_thread
from lungkd.core.storage import StorageError, disk_failure, json_text, output_file, storage_error

if TYPE_CHECKING:  # numpy and scipy: the listing commands answer without them
    from lungkd.core.analysis.groundwork import Scout

# What `lungkd` exits with, the same for every command (the epilog of `lungkd --help` says it).
EXIT_OK = 0
EXIT_FILES_FAILED = 1  # some of the files given could not be used; the others were (lungkd predict)
EXIT_USAGE = 2  # a command line argparse refuses, or input LungKD refuses (a LungKDError); argparse uses 2 too
EXIT_INTERRUPTED = 130  # Ctrl-C, or a cancel: 128 + SIGINT, as shells report it
EXIT_CLOSED_PIPE = 141  # the reader of standard output went away (`| head`): 128 + SIGPIPE
EXIT_CODES_HELP = f"""exit status:
  {EXIT_OK:<4} done
  {EXIT_FILES_FAILED:<4} some files failed (lungkd predict: each is named, the others were analysed), or a fault in
       LungKD itself (with its traceback)
  {EXIT_USAGE:<4} a usage or input error: the message names the file, the line and the fix
  {EXIT_INTERRUPTED:<4} interrupted (Ctrl-C); lungkd run and lungkd train continue where they stopped when run again
  {EXIT_CLOSED_PIPE:<4} standard output was closed early (e.g. piped into head)"""


def _print_stats(stats: dict) -> None:
    print(f"Dataset {stats['root']}")
    print(f"  recordings {stats['recordings']} ({stats['recordings_with_audio']} with audio, "
          f"{len(stats['unannotated'])} unannotated), patients {stats['patients']}")
    print(f"  recordings per split: {', '.join(f'{k} {v}' for k, v in sorted(stats['recordings_per_split'].items()))}")
    header = f"  {'split':<8}" + "".join(f"{name:>9}" for name in ("normal", "crackle", "wheeze", "both", "total"))
    print(header)
    for split, counts in stats["cycles"].items():
        print(f"  {split:<8}" + "".join(f"{n:>9}" for n in counts.values()) + f"{sum(counts.values()):>9}")
    print("  devices: " + ", ".join(f"{k} {v}" for k, v in stats["devices"].items()))
    if stats["sample_rates"]:
        print("  sample rates: " + ", ".join(f"{k} Hz x{v}" for k, v in stats["sample_rates"].items()))
    for match in stats["name_matches"]:
        print(f"  matched {match['file']} -> split entry {match['split']} ({match['reason']})")
    _print_labels(stats)
    if stats["warnings"]:
        print(f"  {len(stats['warnings'])} warning(s):")
        for warning in stats["warnings"]:
            print(f"    {warning}")


def _print_labels(stats: dict) -> None:
    """How a format's labels became the four classes, and what was left out and why (core.data.label_maps)."""
    from lungkd.core.data.labelled_folders import FORMAT_NAMES

    if stats["format"] in FORMAT_NAMES and stats["format"] != "icbhi":
        split = "official split from the folders" if stats["official_split"] else "no official split"
        print(f"  format: {FORMAT_NAMES[stats['format']]} ({split})")
    if stats["labels"]:
        print("  labels: " + ", ".join(f"{row['label']} -> {row['class']} {row['count']}" for row in stats["labels"]))
    for row in stats["left_out"]:
        print(f"  left out: {row['what']} {row['why']}: {row['amount']:g}")


def _label_map(pairs: list[str]) -> dict[str, str] | None:
    """`--map LABEL=CLASS` pairs as a label map's changes."""
    from lungkd.core.data.label_maps import LEAVE_OUT

    changes = {}
    for pair in pairs:
        label, _, target = pair.rpartition("=")
        if not label or target not in (*CLASS_NAMES, LEAVE_OUT):
            raise LungKDError(f"--map {pair}: expected LABEL=CLASS with a class of {', '.join(CLASS_NAMES)} or "
                              f"{LEAVE_OUT}.", fix='e.g. --map "Stridor=none" --map "Rhonchi=wheeze".')
        changes[label] = target
    return changes or None


def _data_stats(args: argparse.Namespace) -> int:
    from lungkd.core.data.dataset import load_dataset

    stats = load_dataset(args.path, dataset_format=args.format, label_map=_label_map(args.map)).stats()
    if args.json:
        print(json_text(stats))
    else:
        _print_stats(stats)
    return 0


def _data_synth(args: argparse.Namespace) -> int:
    from lungkd.core.data.synth_layouts import write_synthetic_layout

    summary = write_synthetic_layout(args.out, args.layout, recordings=args.recordings, seed=args.seed,
                                     label_noise=args.label_noise)
    print(f"Wrote {summary.recordings} recordings of {summary.patients} patients to {Path(args.out)} "
          f"({args.layout} layout)")
    return 0


def _format_scores(scores: dict | None) -> str:
    if not scores or scores["score"] is None:
        return "n/a"
    return f"Sp {scores['sp']:6.2f}  Se {scores['se']:6.2f}  Score {scores['score']:6.2f}"


class _Bar:
    """A progress bar redrawn in place on a terminal; nothing elsewhere (logs keep one line per epoch)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout  # the checked one main() installs
        self.tty = self.stream.isatty()
        self.open = False

    def draw(self, label: str, done: float, eta_s: float | None) -> None:
        if not self.tty:
            return
        eta = f" ETA {_duration(eta_s)}" if eta_s is not None else ""
        self.write(f"{label} |{'#' * int(30 * done):<30}| {100 * done:5.1f}%{eta}")

    def write(self, text: str) -> None:
        """Redraws the bar's line with `text`."""
        if not self.tty:
            return
        self.stream.write(f"\r{text}   ")
        self.stream.flush()
        self.open = True

    def line(self, text: str, stream=None) -> None:
        """A line of its own, below a bar that was being drawn."""
        self.close()
        print(text, file=stream or self.stream, flush=True)

    def close(self) -> None:
        """Ends the bar's line, if one was drawn."""
        if self.open:
            self.stream.write("\n")
            self.open = False


def _epoch_lines(bar: _Bar):
    """A trainer's progress (core.training.trainer.Progress) as a bar per epoch and a line when it ends."""
    def show(p) -> None:
        if p.stage == "notice":
            bar.line(f"note: {p.message}", sys.stderr)
        elif p.stage == "train":
            bar.draw(f"epoch {p.epoch:>3}/{p.epochs}", p.step / p.steps, p.eta_s)
        elif p.stage == "epoch":
            metrics = p.metrics or {}
            line = f"epoch {p.epoch:>3}/{p.epochs}  loss {p.loss:.4f}"
            for split in ("test", "val"):
                if metrics.get(split):
                    line += f"  {split} {_format_scores(metrics[split])}"
            bar.line(line)

    return show


def _train(args: argparse.Namespace) -> int:
    from lungkd.core.recipes import find_recipe, load_recipe
    from lungkd.core.training.single_run import train_from_recipe
    from lungkd.core.workspace.paths import resolve_workspace

    recipe = load_recipe(find_recipe(args.recipe))
    workspace = resolve_workspace(args.workspace)
    cancel = CancelToken()
    try:
        result, model_dir = train_from_recipe(recipe, workspace, _epoch_lines(_Bar()), cancel)
    except KeyboardInterrupt:
        cancel.cancel()
        return _interrupted("run the same command again to resume from the last finished epoch.")
    except Cancelled as exc:
        print(f"lungkd: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    final = result.scores.to_dict() if result.scores else None
    print(f"selected epoch {result.selected_epoch} ({result.selection}): test {_format_scores(final)}")
    if result.selection_note:
        print(f"note: {result.selection_note}.")
    print(f"model saved to {model_dir}")
    return 0


def _adapt(args: argparse.Namespace) -> int:
    from lungkd.core.kd.adapt import AdaptSettings, adapt_to_folder
    from lungkd.core.workspace.paths import resolve_workspace

    settings = AdaptSettings(layers=args.layers, epochs=args.epochs, distil=args.distil)
    cancel = CancelToken()
    try:
        done = adapt_to_folder(args.model, args.data, resolve_workspace(args.workspace), args.out, settings,
                               on_progress=_epoch_lines(_Bar()), cancel=cancel)
    except (KeyboardInterrupt, Cancelled):
        cancel.cancel()
        return _interrupted("nothing was saved.")
    print("\n".join(done.summary()))
    print(f"model saved to {done.folder}")
    return 0


def _models(args: argparse.Namespace) -> int:
    from lungkd.core.models.registry import models_table

    print(models_table())
    return 0


def _trained_models(args: argparse.Namespace) -> int:
    """`lungkd models trained`: the models a user can analyse with, each marked when its test Score does not show
    that it can be trusted."""
    from lungkd.core.models.inventory import find_models, shipped_models_folder
    from lungkd.core.workspace.paths import existing_workspace

    workspace = existing_workspace(args.workspace)
    entries = find_models(*([workspace] if workspace else []), shipped_models_folder())
    if args.json:
        print(json_text([{"name": e.name, "arch": e.arch, "score": e.score, "scored_on": e.scored_on,
                          "path": str(e.path), "warnings": [w.model_dump() | {"text": w.text} for w in e.test_warnings]}
                         for e in entries]))
        return 0
    print(f"The trained models of {workspace or 'no workspace yet'} and those shipped with LungKD, best test Score "
          "first; ⚠ marks a model whose Score does not show it can be trusted:")
    for e in entries:
        mark = "⚠" if e.test_warnings else " "
        score = "no Score" if e.score is None else f"Score {e.score:5.1f}"
        print(f"{mark} {score}  {e.name}" + (f", on {e.scored_on}" if e.scored_on else ""))
        print(f"    {e.path}")
        for warning in e.test_warnings:
            print(f"    ⚠ {warning.text}")
    return 0


def _fit_limits(args: argparse.Namespace) -> int:
    from lungkd.core.data.sources import DataSpec, SyntheticData
    from lungkd.core.training.refit import refit_limits
    from lungkd.core.workspace.paths import resolve_workspace

    def data(folder: Path | None, recordings: int | None, seed: int) -> DataSpec | None:
        # calibration_fraction 0: the model trained on the whole training split, nothing was held out of it
        if folder is not None:
            return DataSpec(path=str(folder), calibration_fraction=0.0)
        if recordings is not None:
            return DataSpec(synthetic=SyntheticData(recordings=recordings, seed=seed), calibration_fraction=0.0)
        return None

    trained_on = data(args.data, args.synthetic, args.seed)
    held_out = data(args.held_out_data, args.held_out, args.held_out_seed)
    if trained_on is None or held_out is None:
        raise LungKDError("fit-limits needs the data the model was trained on and recordings it never saw.",
                          fix="give --data FOLDER (or --synthetic N --seed S) and --held-out-data FOLDER (or "
                              "--held-out N --held-out-seed S).")
    card = refit_limits(args.model, trained_on, held_out, resolve_workspace(args.workspace))
    print(f"{args.model}: temperature {card.temperature:.3f}, distance limit {card.training_statistics.limit:.2f} "
          f"({card.training_statistics.held_out_cycles} held-out cycles); the card was rewritten, the weights kept")
    return 0


def _export_model(args: argparse.Namespace) -> int:
    from lungkd.core.models.archive import export_archive
    from lungkd.core.models.hub_folder import export_folder

    if args.out.exists() and not args.force:
        raise LungKDError("the output exists already.", path=args.out,
                          fix="give another name, or add --force to replace it.")
    if args.out.resolve().is_relative_to(args.model.resolve()):
        raise LungKDError("the output would go inside the model folder.", path=args.out, fix="write it elsewhere.")
    if args.folder:
        out = export_folder(args.model, args.out, license=args.license)
        print(f"wrote {out}: the model folder and its README.md; publish it with `hf upload OWNER/NAME {out}`")
    else:
        out = export_archive(args.model, args.out)
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): import it with `lungkd models import {out.name}`")
    return 0


def _import_model(args: argparse.Namespace) -> int:
    from lungkd.core.models.archive import import_archive
    from lungkd.core.models.card_summary import card_text
    from lungkd.core.workspace.layout import models_folder
    from lungkd.core.workspace.paths import resolve_workspace

    into = args.into or models_folder(resolve_workspace(args.workspace))
    imported = import_archive(args.file, into)
    print(card_text(imported.card))
    where = "was imported before, to" if imported.already_there else "checked and imported to"
    print(f"\n{args.file.name} {where} {imported.folder}")
    return 0


class _StageProgress:
    """Each event as a sentence; on a terminal also a bar for the model in training (runs training at once,
    on an executor with several workers, share the line, each with its percentage), with the time left for the
    whole experiment."""

    def __init__(self, stream=None):
        self.bar = _Bar(stream)
        self.experiment_eta: float | None = None
        self.training: dict[str, float] = {}  # the runs with a bar, and how far each is

    def __call__(self, event) -> None:
        from lungkd.core.kd.progress import describe

        if event.kind in ("finished", "failed", "cancelled"):
            self.training.pop(event.run or event.stage, None)
        if event.kind == "progress" and event.stage == "experiment":
            self.experiment_eta = event.eta_s
        elif event.kind == "progress" and event.total:
            run = event.run or event.stage
            done = self.training[run] = event.step / event.total
            left = "" if self.experiment_eta is None else f", all {_duration(self.experiment_eta)}"
            if len(self.training) == 1:
                self.bar.draw(f"{run}{left}", done, event.eta_s)
            else:
                self.bar.write("  ".join(f"{r} {100 * d:3.0f}%" for r, d in self.training.items()) + left)
        elif event.stage == "experiment" and event.kind == "failed":
            pass  # the error reaches main(), which says it once, with its fix
        elif (sentence := describe(event)) is not None:
            self.bar.line(sentence)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def _recipes(args: argparse.Namespace) -> int:
    from lungkd.core.recipe_files import shipped_recipes

    for kind, command in (("experiment", "lungkd run NAME"), ("training", "lungkd train NAME")):
        print(f"{kind} recipes ({command}):")
        for recipe in (r for r in shipped_recipes() if r.kind == kind):
            print(f"  {recipe.name:<22}{recipe.description}")
    print("A shipped recipe is run by its name; copy its file (`lungkd recipes --path NAME` prints where it is) "
          "to change it.")
    return 0


def _recipe_path(args: argparse.Namespace) -> int:
    from lungkd.core.recipe_files import find_recipe

    print(find_recipe(args.path))
    return 0


def _demo(args: argparse.Namespace) -> int:
    args.recipe, args.data = "demo-cpu", None
    print(f"Running the CPU demo ({args.recipe}): tiny CNN6 teachers, their ensemble and a distilled student "
          "on a generated dataset.", flush=True)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    from lungkd.core.kd.executors import create_executor
    from lungkd.core.kd.experiment import Experiment
    from lungkd.core.recipes import find_recipe, load_experiment
    from lungkd.core.workspace.layout import REPORT_HTML, REPORT_MARKDOWN
    from lungkd.core.workspace.paths import resolve_workspace

    recipe = load_experiment(find_recipe(args.recipe))
    if args.data:
        if isinstance(recipe.data, tuple):
            raise LungKDError(f"the recipe trains on {len(recipe.data)} datasets; --data replaces one.",
                              path=recipe.source, fix="change the paths in the recipe's [[data]] tables instead.")
        recipe = recipe.replace(data=recipe.data.replace(path=str(args.data), synthetic=None))
    # --address names a Ray cluster, so it alone chooses the ray executor
    name = getattr(args, "executor", None) or ("ray" if getattr(args, "address", None) else None) or \
        recipe.executor_name
    executor = create_executor(name, workers=getattr(args, "workers", None) or recipe.workers,
                               address=getattr(args, "address", None))
    cancel = CancelToken()
    experiment = Experiment(recipe, resolve_workspace(args.workspace), _StageProgress(), cancel, executor)
    try:
        report = experiment.run()
    except (KeyboardInterrupt, Cancelled):
        cancel.cancel()
        return _interrupted("run the same command again to continue where it left off.")
    finally:
        executor.close()
    print(f"\nResult of {recipe.name} ({report.selection}, {report.test_cycles} test cycles):")
    for line in report.headline():
        print(f"  {line}")
    print(f"report: {experiment.folder / REPORT_MARKDOWN} (and {REPORT_HTML} beside it)")
    return 0


def _report(args: argparse.Namespace) -> int:
    from lungkd.core.workspace.layout import REPORT_JSON, REPORT_MARKDOWN, experiment_folder
    from lungkd.core.workspace.paths import existing_workspace
    from lungkd.core.workspace.status import resume_command

    workspace = existing_workspace(args.workspace)
    folder = experiment_folder(workspace, args.id) if workspace else None
    if folder is None or not folder.is_dir():
        raise LungKDError(f"there is no experiment '{args.id}' in the workspace "
                          f"{workspace or 'yet (the default workspace does not exist)'}.",
                          fix="`lungkd runs` lists the experiments; give --workspace DIR for another workspace.")
    path = folder / (REPORT_JSON if args.json else REPORT_MARKDOWN)
    if not path.exists():
        raise LungKDError(f"experiment '{args.id}' has no report yet: it has not run to the end.", path=folder,
                          fix=f"continue it with `{resume_command(workspace, folder)}`.")
    print(path.read_text(encoding="utf-8"), end="")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from lungkd.core.analysis.evaluation import evaluate_model
    from lungkd.core.features.cache import FeatureCache
    from lungkd.core.workspace.layout import cache_folder
    from lungkd.core.workspace.paths import existing_workspace, resolve_workspace

    workspace = existing_workspace(args.workspace) or resolve_workspace(None)  # the default one may be new
    if args.per_cycle and not args.json:
        raise LungKDError("--per-cycle needs --json.", fix="add --json: each cycle's probabilities join the JSON.")
    result = evaluate_model(args.model, args.data, split=args.split, cache=FeatureCache(cache_folder(workspace)))
    if args.json:
        print(json_text(result.to_dict(per_cycle=args.per_cycle)))
        return 0
    print(f"{result.architecture} on {result.data} ({result.split}, {result.cycles} cycles)")
    print(f"  {result.scores}   95% patient bootstrap interval of the Score: "
          f"[{result.interval.low:.2f}, {result.interval.high:.2f}]")
    print(f"  confusion (rows true, columns predicted: {' '.join(CLASS_NAMES)})")
    for name, row in zip(CLASS_NAMES, result.scores.confusion):
        print(f"  {name:<8}" + "".join(f"{n:>8}" for n in row))
    return 0


def _runs(args: argparse.Namespace) -> int:
    from lungkd.core.workspace.catalog import Catalog
    from lungkd.core.workspace.layout import catalog_path
    from lungkd.core.workspace.paths import existing_workspace
    from lungkd.core.workspace.status import RunSummary, status_text

    workspace = existing_workspace(args.workspace)
    experiments = []
    if workspace is not None and catalog_path(workspace).is_file():
        with Catalog(catalog_path(workspace)) as catalog:
            experiments = catalog.experiments()
            if args.name is not None:
                return _runs_of(catalog, args.name, args.epochs, args.json)
    if args.name is not None:
        raise _no_experiment(args.name, workspace)
    statuses = [status_text(e.status, e.folder, workspace) for e in experiments]
    if args.json:
        print(json_text([{"name": e.name, "status": e.status, "state": state, "folder": str(e.folder),
                           "updated": e.updated, "summary": e.summary} for e, state in zip(experiments, statuses)]))
        return 0
    if not experiments:
        print("no experiments yet; start one with `lungkd run RECIPE.toml` (`lungkd recipes` lists the shipped ones)")
        return 0
    print(f"{'experiment':<28}{'teachers':>9}{'ensemble':>14}  students (distilled / hard)  status")
    for e, state in zip(experiments, statuses):
        s = RunSummary.from_catalog(e.summary)
        print(f"{e.name:<28}{s.teachers_text():>9}{s.ensemble_text():>14}  {s.students_text()}  {state}")
    return 0


def _no_experiment(name: str, workspace: Path | None) -> LungKDError:
    return LungKDError(f"there is no experiment '{name}' in the workspace "
                       f"{workspace or 'yet (the default workspace does not exist)'}.",
                       fix="`lungkd runs` lists the experiments; give --workspace DIR for another workspace.")


def _runs_of(catalog, name: str, epochs: bool, as_json: bool) -> int:
    """One experiment's runs (`lungkd runs NAME`), with every epoch's loss and Scores (`--epochs`)."""
    experiment = next((e for e in catalog.experiments() if e.name == name), None)
    if experiment is None:
        raise _no_experiment(name, catalog.path.parent)
    runs = catalog.runs(experiment.id)
    history = {run.id: catalog.epochs(run.id) for run in runs} if epochs else {}
    if as_json:
        print(json_text([{"role": r.role, "arch": r.arch, "labels": r.labels, "seed": r.seed, "status": r.status,
                          "selected_epoch": r.selected_epoch, "test": r.test,
                          **({"epochs": [vars(e) for e in history[r.id]]} if epochs else {})} for r in runs]))
        return 0
    for run in runs:
        score = _f((run.test or {}).get("score"))
        print(f"{run.role:<9}{run.arch:<16}{run.labels:<9}seed {run.seed:<5}{run.status:<10}"
              f"epoch {run.selected_epoch if run.selected_epoch is not None else '—':<5}Score {score}")
        for e in history.get(run.id, []):
            print(f"    epoch {e.epoch:>4}  loss {_f(e.loss, 4)}  lr {e.lr if e.lr is not None else '—':<10.3g}"
                  f"  test {_format_scores(e.test)}" + (f"  val {_format_scores(e.val)}" if e.val else ""))
    return 0


def _f(value, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _how_sure(analysis: dict) -> str:
    if analysis["fallback_reason"]:
        return f" ({analysis['fallback_reason']})"
    if analysis["segmentation_confidence"] is None:
        return ""
    return (f" ({analysis['segmentation_confidence']:.0%} sure, breathing every {analysis['breathing_period']:.1f} s)")


def _unlike(analysis: dict) -> str:
    if not analysis["unlike_training"]:
        return ""
    return (f"; UNLIKE the model's training data (median distance {analysis['training_distance']:.1f}, "
            f"limit {analysis['distance_limit']:.1f}): do not trust these predictions")


def _checks(a: dict) -> str:
    """The recording's quality and breathing in one line, from its JSON form."""
    from lungkd.core.analysis.recording_checks import breathing_words, quality_words

    breathing = breathing_words(a["breathing_rate"], a["breathing_rate_confidence"], a["ie_ratio"],
                                a["ie_confidence"], a["breathing_note"])
    return f"quality {quality_words(a['quality'], a['quality_reasons'])}; {breathing}"


def _say_prompts(analysed, patients) -> None:
    """On standard error: what is to be said of the prompts (a recording whose prompt fell back to the model's
    missing-value wording, a side file's bad line: each once), and the recordings a metadata table names that
    were not given."""
    for note in dict.fromkeys(note for r in analysed for note in r.json["prompt_notes"]):
        print(f"note: {note}", file=sys.stderr)
    unused = sorted(set(patients.rows) - {r.name for r in analysed}) if patients is not None else []
    if unused:
        print(f"lungkd: warning: {patients.path} names {len(unused)} recording(s) that were not analysed: "
              f"{', '.join(unused[:5])}{', ...' if len(unused) > 5 else ''}", file=sys.stderr)


def _predict(args: argparse.Namespace) -> int:
    from lungkd.core.models.card import model_notes, require_model_card

    if args.out is not None:
        if not (args.csv or args.json):
            raise LungKDError("--out needs --csv or --json to say what to write.",
                              fix="add --csv (one row per cycle) or --json.")
        args.out = output_file(args.out, [args.model, *args.recordings, *filter(None, [args.metadata])],
                               args.force)
    notes = model_notes(require_model_card(args.model))  # said at once: torch and the model take seconds to load
    print(f"note: {args.model} was trained on {notes.trained_on}", file=sys.stderr, flush=True)
    for warning in notes.warnings():
        print(f"note: {warning}", file=sys.stderr, flush=True)

    from lungkd.core.analysis.batch import expand_recordings
    from lungkd.core.analysis.groundwork import Scout

    with Scout() as scout:  # a helper finding the cycles: the first recording's while torch and the model load
        recordings, _ = expand_recordings(args.recordings, args.glob)
        if recordings:
            scout.order(recordings[0])
        return _predict_with(args, scout)


def _predict_with(args: argparse.Namespace, scout: Scout) -> int:
    from lungkd.core.analysis.batch import analyse_folder
    from lungkd.core.analysis.combined_export import check_export_folder, write_combined_export
    from lungkd.core.analysis.limits import load_model_with_limits
    from lungkd.core.analysis.results import ResultsCache, csv_header
    from lungkd.core.data.patient_metadata import read_patient_table
    from lungkd.core.pool import default_workers
    from lungkd.core.storage import write_text_atomic
    from lungkd.core.workspace.paths import resolve_workspace

    patients = read_patient_table(args.metadata) if args.metadata is not None else None
    if args.export is not None:
        check_export_folder(args.export, args.force)
    model = load_model_with_limits(args.model)
    if patients is not None and model.inputs.prompts is None:
        print(f"note: {args.model} reads no patient metadata ({model.card.architecture} has no prompts); "
              f"{args.metadata} is not used.", file=sys.stderr)
    bar, cancel = _Bar(sys.stderr), CancelToken()
    try:
        results = ResultsCache.for_workspace(resolve_workspace(args.workspace))
    except OSError as exc:  # a workspace that cannot be made: every recording is analysed, nothing remembered
        print(f"note: no results cache ({exc.strerror or exc}); nothing will be skipped next time.", file=sys.stderr)
        results = None
    try:
        # the command has the process to itself: the model may use more cores where that proves faster
        batch = analyse_folder(args.recordings, model, results, glob=args.glob, cancel=cancel, patients=patients,
                               on_progress=lambda p: _draw_batch(bar, p), threads=default_workers(), scout=scout)
    except (KeyboardInterrupt, Cancelled):
        cancel.cancel()
        bar.close()
        return _interrupted("the recordings analysed so far are kept: run the same command again to go on from "
                            "where it stopped.")
    bar.close()
    for left_out in batch.left_out:
        print(f"lungkd: warning: {left_out.text}", file=sys.stderr)
    for failure in batch.failures:  # one bad file among many: said, and the rest analysed
        print(f"lungkd: error: {failure.text}", file=sys.stderr)
    analysed = batch.results
    _say_prompts(analysed, patients)
    reused = sum(r.reused for r in analysed)
    if reused:
        print(f"note: {reused} of {len(analysed)} recording(s) were analysed before by this model (the workspace's "
              "results cache); they were not analysed again.", file=sys.stderr)
    if args.export is not None:
        paths = write_combined_export(args.export, batch)
        print(f"wrote {sum(len(r.cycles) for r in analysed)} cycles of {len(analysed)} recording(s) to "
              f"{', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    if args.csv or args.json:
        text = io.StringIO()
        if args.csv:
            csv.writer(text).writerows([csv_header(), *(row for r in analysed for row in r.csv_rows)])
        else:
            text.write(json_text([r.json for r in analysed]) + "\n")
        if args.out is None:
            sys.stdout.write(text.getvalue())
        else:  # whole or not at all: an interrupted run never leaves half a file in its place
            write_text_atomic(args.out, text.getvalue())
            print(f"wrote {sum(len(r.cycles) for r in analysed)} cycles to {args.out}", file=sys.stderr)
    elif args.export is None:
        for r in analysed:
            _print_analysis(r.json)
    return EXIT_FILES_FAILED if batch.failures else EXIT_OK


def _draw_batch(bar: _Bar, progress) -> None:
    """The bar of a batch of recordings, with the time left once a recording was analysed."""
    if progress.total > 1:
        label = f"{progress.done}/{progress.total} recordings" + (f" ({progress.reused} done before)"
                                                                 if progress.reused else "")
        bar.draw(label, progress.done / progress.total, progress.eta_s)


def _print_analysis(a: dict) -> None:
    """One recording's cycles as `lungkd predict` lists them, from its JSON form (analysed now or before)."""
    from lungkd.core.analysis.quality import POOR

    counts = {name: sum(c["prediction"] == name for c in a["cycles"]) for name in CLASS_NAMES}
    print(f"{Path(a['path']).stem}: {len(a['cycles'])} cycles from {a['cycle_source']}{_how_sure(a)}, "
          + ", ".join(f"{k} {v}" for k, v in counts.items()) + _unlike(a))
    if a["phase_uncertain"]:
        print(f"  phase uncertain ({a['phase_confidence']:.0%} sure the cycles start at inspiration): "
              f"{a['phase_note']}")
    print(f"  {_checks(a)}")
    if a["prompt"] is not None:
        source = f" (patient metadata from {a['prompt_source']})" if a["prompt_source"] else ""
        print(f"  prompt{source}: {a['prompt']}")
    for c in a["cycles"]:
        truth = "" if c["truth"] is None else f"  (annotated {c['truth']})"
        sure = c["segmentation_confidence"]
        bounds = "" if sure is None else f"  (bounds {sure:.0%} sure)"
        unlike = "  (unlike the training data)" if c["unlike_training"] else ""
        poor = f"  (POOR recording quality: {' '.join(c['quality_reasons'])})" if c["quality"] == POOR else ""
        print(f"  {c['start']:8.3f}-{c['end']:8.3f} s  {c['prediction']:<8} {c[c['prediction']] or 0:6.1%}"
              f"{truth}{bounds}{unlike}{poor}")


def _visit_report(args: argparse.Namespace) -> int:
    """One report per patient visit: HTML written here, PDF by Qt's writer in a process of its own
    (lungkd.app.report_pdf), so that this engine never loads Qt."""
    from lungkd.core.analysis.limits import load_model_with_limits
    from lungkd.core.analysis.visit import model_summary, report_file_names, visit_entries, visit_reports
    from lungkd.core.analysis.visit_pages import visit_html
    from lungkd.core.storage import write_text_atomic

    suffix = args.out.suffix.lower()
    if suffix not in (".pdf", ".html", ".htm"):
        raise LungKDError("the report is written as PDF or HTML, and the file name says which.", path=args.out,
                          fix="end --out in .pdf or .html, e.g. --out visit.pdf.")
    args.out = output_file(args.out, [args.model, *args.recordings], args.force)
    model = load_model_with_limits(args.model)
    batch = visit_entries(args.recordings, model)
    for left_out in batch.left_out:
        print(f"lungkd: warning: {left_out.text}", file=sys.stderr)
    for failure in batch.failures:
        print(f"lungkd: error: {failure.text}", file=sys.stderr)
    if not batch.results:
        raise LungKDError("no recording could be analysed, so there is nothing to report.",
                          fix="give wav, flac or ogg recordings (see the errors above).")
    reports = visit_reports(batch.results, model_summary(model.card, Path(args.model)))
    for report, target in zip(reports, report_file_names(args.out, reports)):
        target = output_file(target, [args.model, *args.recordings], args.force)
        html = visit_html(report)
        if suffix == ".pdf":
            _pdf_from_html(html, target)
        else:
            write_text_atomic(target, html)
        print(f"wrote the report of {report.title} ({len(report.recordings)} recording(s)) to {target}",
              file=sys.stderr)
    return EXIT_FILES_FAILED if batch.failures else EXIT_OK


def _pdf_from_html(html: str, target: Path) -> None:
    import subprocess
    import tempfile

    from lungkd.core.kd.launch import report_pdf_command

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / f"{target.stem}.html"
        source.write_text(html, encoding="utf-8")
        done = subprocess.run(report_pdf_command(str(source), str(target)), capture_output=True, text=True)
    if done.returncode:
        raise LungKDError(f"Qt's PDF writer failed: {done.stderr.strip()[-500:] or done.returncode}", path=target,
                          fix="write the report as HTML instead (--out FILE.html), or check that PySide6 is "
                              "installed.")


class _PrintVersion(argparse.Action):
    """`--version`: the facts of core.about, gathered only when asked (importing torch takes seconds)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from lungkd.core.about import gather_about

        print(gather_about().text())
        parser.exit()


def _add_archive_commands(model_commands) -> None:
    export = model_commands.add_parser(
        "export", help="write a model as one .lungkd file, or (--folder) a Hugging Face model repository",
        description="Checks MODEL against its card and writes it as OUT.lungkd: the safetensors weights, the "
                    "configuration and the card (with the limits and every file's sha256 and size). With --folder, "
                    "OUT is a folder: the same files and a README.md whose front matter the Hugging Face hub reads.")
    export.add_argument("model", type=Path, help="a model folder")
    export.add_argument("out", type=Path, help="OUT.lungkd, or a folder with --folder")
    export.add_argument("--folder", action="store_true", help="write a Hugging Face model repository folder")
    export.add_argument("--license", default="other", help="the license id of the README's front matter "
                                                           "(default: other)")
    export.add_argument("--force", action="store_true", help="replace OUT when it exists")
    export.set_defaults(run=_export_model)
    imported = model_commands.add_parser(
        "import", help="check a .lungkd file and unpack it into the workspace's models",
        description="Refuses anything that is not exactly a LungKD model (pickles, unknown members, names that "
                    "leave the folder, links, sizes or hashes other than its card's, a card that does not "
                    "validate), naming what is wrong; prints the card and unpacks it whole or not at all.")
    imported.add_argument("file", type=Path, help="a .lungkd file")
    imported.add_argument("--into", type=Path, metavar="DIR", help="the folder to unpack it into (default: the "
                                                                   "workspace's models folder)")
    imported.add_argument("--workspace", type=Path, help="workspace folder (default: the user data folder)")
    imported.set_defaults(run=_import_model)


def _seed(text: str) -> int:
    """A generator seed given on the command line, in the range a recipe's seeds take."""
    from lungkd.core.schema import MAX_SEED

    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{text!r}: seeds are whole numbers from 0 to {MAX_SEED}")
    return value


def _add_batch_options(predict: argparse.ArgumentParser) -> None:
    predict.add_argument("--glob", metavar="PATTERN",
                         help="in folders, only the recordings whose path ends as PATTERN says ('*_Meditron.wav', "
                              "'visit-2/*')")
    predict.add_argument("--export", type=Path, metavar="FOLDER",
                         help="write one CSV, one JSON and one Raven selection table for all the recordings into "
                              "FOLDER, every row with its provenance (file and sha256, model and card sha256, "
                              "LungKD version, time of analysis)")
    predict.add_argument("--workspace", type=Path,
                         help="workspace folder whose results cache remembers what was analysed, so a folder "
                              "analysed again (or a run stopped with Ctrl-C) goes on where it stopped (default: the "
                              "user data folder)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lungkd", description="Lung-sound classifiers distilled from ensembles.",
                                     epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_PrintVersion,
                        help="print the versions of LungKD, torch, Qt and transformers and the device found")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="inspect or generate datasets").add_subparsers(dest="data_command",
                                                                                          required=True)
    stats = data.add_parser("stats", help="recordings, patients and cycles per split and class")
    stats.add_argument("path", type=Path, help="a dataset folder: ICBHI, SPRSound, HF_Lung, recordings with a label "
                                               "table, Audacity label tracks or ICBHI-style .txt annotations")
    stats.add_argument("--format", choices=("icbhi", "sprsound", "hf_lung", "table", "audacity"),
                       help="read the folder as this format (default: by what it holds)")
    stats.add_argument("--map", action="append", default=[], metavar="LABEL=CLASS",
                       help="change the format's label map, e.g. --map Stridor=none (docs/datasets.md)")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.set_defaults(run=_data_stats)

    synth = data.add_parser("synth", help="write a synthetic dataset in the ICBHI layout or another dataset's")
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--layout", default="icbhi", choices=("icbhi", "sprsound", "hf_lung", "table", "audacity"),
                       help="the dataset format to write (default icbhi)")
    synth.add_argument("--recordings", type=int, default=120)
    synth.add_argument("--seed", type=_seed, default=0)
    synth.add_argument("--label-noise", type=float, default=0.0, help="fraction of cycles given a wrong label")
    synth.set_defaults(run=_data_synth)

    train = commands.add_parser("train", help="train one model with hard labels from a recipe (resumable)")
    train.add_argument("recipe", help="a .toml training recipe, or a shipped one by name (`lungkd recipes`)")
    train.add_argument("--workspace", type=Path, help="workspace folder (default: the user data folder)")
    train.set_defaults(run=_train)

    run = commands.add_parser("run", help="run an experiment recipe: teachers, soft labels, students (resumable)")
    run.add_argument("recipe", help="an experiment .toml, or a shipped one by name (`lungkd recipes`)")
    run.add_argument("--workspace", type=Path, help="workspace folder (default: the user data folder)")
    run.add_argument("--data", type=Path, help="use this dataset folder instead of the recipe's [data] path")
    run.add_argument("--executor", help="where the runs train: process (child processes; the default unless the "
                                        "recipe says), inprocess (this process) or ray (a Ray cluster)")
    run.add_argument("--address", help="the Ray cluster to join: auto (this machine's cluster) or ray://HOST:10001; "
                                       "without it a local Ray is started")
    run.add_argument("--workers", type=int, help="runs that train at once (default: one per GPU, or one)")
    run.set_defaults(run=_run)

    demo = commands.add_parser("demo", help="run the shipped CPU demo experiment (a few minutes)")
    demo.add_argument("--workspace", type=Path, help="workspace folder (default: the user data folder)")
    demo.set_defaults(run=_demo)

    runs = commands.add_parser("runs", help="list the workspace's experiments with status and Scores, or one "
                                            "experiment's runs")
    runs.add_argument("name", nargs="?", help="an experiment: list its runs (teachers, students, baselines)")
    runs.add_argument("--epochs", action="store_true", help="with NAME: every epoch's loss and Scores of each run")
    runs.add_argument("--json", action="store_true")
    runs.add_argument("--workspace", type=Path)
    runs.set_defaults(run=_runs)

    report = commands.add_parser("report", help="print an experiment's report")
    report.add_argument("id", help="the experiment's name (see `lungkd runs`)")
    report.add_argument("--json", action="store_true", help="print report.json instead of the Markdown")
    report.add_argument("--workspace", type=Path)
    report.set_defaults(run=_report)

    evaluate = commands.add_parser("evaluate", help="score a saved model on a dataset's test split")
    evaluate.add_argument("model", type=Path, help="a model folder (runs/.../model, teachers/.../model, ...)")
    evaluate.add_argument("data", type=Path, help="a dataset folder of any format LungKD reads (it may be one the "
                                                  "model never trained on)")
    evaluate.add_argument("--split", default="test", help="train, test or val (default test)")
    evaluate.add_argument("--json", action="store_true")
    evaluate.add_argument("--per-cycle", action="store_true",
                          help="with --json: every cycle's calibrated probabilities and prompt, as predict gives them")
    evaluate.add_argument("--workspace", type=Path)
    evaluate.set_defaults(run=_evaluate)

    predict = commands.add_parser("predict", help="per-cycle predictions with probabilities for recordings")
    predict.add_argument("model", type=Path, help="a model folder")
    predict.add_argument("recordings", type=Path, nargs="+",
                         help="wav, flac or ogg files, or folders (their recordings, searched recursively)")
    form = predict.add_mutually_exclusive_group()
    form.add_argument("--csv", action="store_true", help="one CSV row per cycle (to standard output, or --out)")
    form.add_argument("--json", action="store_true", help="JSON (to standard output, or --out)")
    predict.add_argument("--out", "-o", type=Path, metavar="FILE",
                         help="write the CSV or JSON to FILE; never one of the inputs")
    predict.add_argument("--force", action="store_true", help="replace FILE (or the --export files) when it exists")
    predict.add_argument("--metadata", type=Path, metavar="FILE.csv",
                         help="patient metadata for models that read prompts (BTS): a CSV with the columns "
                              "recording, age, sex, bmi, weight_kg, height_cm, chest_location, device "
                              "(docs/cli.md)")
    _add_batch_options(predict)
    predict.set_defaults(run=_predict)

    visit = commands.add_parser("visit-report", help="a report of a patient visit (PDF or HTML) to file or share",
                                description="One document per patient visit (recordings grouped by patient and "
                                            "session from ICBHI-style names): the intended use, the model, each "
                                            "recording's quality, breathing, chest location, crackle and wheeze "
                                            "cycles with spectrogram snippets, what a person changed, versions and "
                                            "file hashes.")
    visit.add_argument("recordings", type=Path, nargs="+", help="wav, flac or ogg files, or folders of them")
    visit.add_argument("--model", type=Path, required=True, help="a model folder")
    visit.add_argument("--out", "-o", type=Path, required=True, metavar="FILE",
                       help="FILE.pdf or FILE.html; several visits give FILE-PATIENT_SESSION.pdf each")
    visit.add_argument("--force", action="store_true", help="replace FILE when it exists")
    visit.set_defaults(run=_visit_report)

    _add_adapt(commands)

    models = commands.add_parser("models", help="list the model architectures or the trained models; "
                                                "fit a model's limits; export and import models")
    models.set_defaults(run=_models)
    model_commands = models.add_subparsers(dest="models_command")
    model_commands.add_parser("list", help="the architectures (the default)").set_defaults(run=_models)
    trained = model_commands.add_parser(
        "trained", help="the trained models to analyse with: the workspace's and the shipped ones, ⚠ where the test "
                        "Score does not show a model can be trusted")
    trained.add_argument("--json", action="store_true", help="print one JSON list")
    trained.add_argument("--workspace", type=Path)
    trained.set_defaults(run=_trained_models)
    fit = model_commands.add_parser(
        "fit-limits", help="give a model trained before cards held limits its calibration and training statistics",
        description="Rewrites the card of MODEL with what training now writes into every card: what it was trained "
                    "on, the temperature that calibrates its probabilities and the statistics of its training data. "
                    "The statistics come from the training split of the data it was trained on; the temperature and "
                    "the distance limit from recordings it never saw. The weights are not touched.")
    fit.add_argument("model", type=Path, help="a model folder")
    fit.add_argument("--data", type=Path, help="the folder the model was trained on (split by patient)")
    fit.add_argument("--synthetic", type=int, metavar="N", help="or: it was trained on N generated recordings")
    fit.add_argument("--seed", type=_seed, default=0, help="their generator seed (default 0)")
    fit.add_argument("--held-out-data", type=Path, help="a folder of recordings the model never saw")
    fit.add_argument("--held-out", type=int, metavar="N", help="or: N fresh generated recordings")
    fit.add_argument("--held-out-seed", type=_seed, default=100, help="their generator seed (default 100)")
    fit.add_argument("--workspace", type=Path, help="workspace folder for generated data and the cache")
    fit.set_defaults(run=_fit_limits)
    _add_archive_commands(model_commands)

    recipes = commands.add_parser("recipes", help="list the shipped recipes with their descriptions")
    recipes.add_argument("--path", metavar="NAME", help="print where the shipped recipe NAME is (to copy it)")
    recipes.set_defaults(run=lambda args: _recipe_path(args) if args.path else _recipes(args))
    return parser


def _interrupted(what_next: str = "") -> int:
    """Ctrl-C ended the command: said in one line, never a traceback. From here on another Ctrl-C ends the
    process at once, so nothing left to do on the way out (closing a cluster, joining threads) can hold it."""
    signal.signal(signal.SIGINT, lambda signum, frame: os._exit(EXIT_INTERRUPTED))
    print(f"lungkd: interrupted{'; ' + what_next if what_next else '.'}", file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED


STANDARD_OUTPUT = "standard output"


class _Output:
    """Standard output whose failures — a full device (`> /dev/full`), a descriptor closed or not open for
    writing — are a StorageError naming it; a closed pipe stays a BrokenPipeError (`| head` ends quietly)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        return self._checked(lambda: self._stream.write(text))

    def flush(self) -> None:
        if self._stream is not None:  # a closed one has nothing to flush (Python flushes it at exit too)
            self._checked(self._stream.flush)

    def _checked(self, step):
        fix = "send it to a terminal, a pipe or a file on a disk with space, or use --out where the command has it."
        if self._stream is None:
            raise StorageError(f"{STANDARD_OUTPUT} is closed: nothing can be printed.", fix=fix)
        try:
            return step()
        except BrokenPipeError:
            raise
        except OSError as exc:
            cause = (disk_failure(exc) or (exc.strerror or str(exc),))[0]
            raise StorageError(f"{STANDARD_OUTPUT} cannot be written: {cause}.", fix=fix) from None

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _silence_output() -> None:
    """Nothing is left to write to a standard output that failed: what is still buffered would fail again at
    exit (as a second message)."""
    if sys.__stdout__ is not None:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.__stdout__.fileno())


def _add_adapt(commands) -> None:
    adapt = commands.add_parser(
        "adapt", help="adapt a trained model to new annotated recordings (a new stethoscope)",
        description="Fine-tunes MODEL on the annotated recordings in DATA, split by patient (the folder's split file "
                    "where it has one): it trains on some patients, fits its temperature and limits on others and is "
                    "tested on the rest. The input contract stays the model's own. The new model goes to the "
                    "workspace's adapted/NAME folder; its card names MODEL as its parent.")
    adapt.add_argument("model", type=Path, help="a model folder")
    adapt.add_argument("data", type=Path, help="a folder of recordings with .txt annotations (ICBHI layout or not)")
    adapt.add_argument("--layers", choices=("head", "last", "all"), default="last",
                       help="what learns: head, last (the head and the last block; the default) or all")
    adapt.add_argument("--epochs", type=int, default=20, help="default 20")
    adapt.add_argument("--distil", action="store_true",
                       help="also learn from the model's teachers (an experiment's student only): half of each "
                            "target is their ensemble")
    adapt.add_argument("--out", metavar="NAME", help="the new model's name (default: the data folder's)")
    adapt.add_argument("--workspace", type=Path, help="workspace folder (default: the user data folder)")
    adapt.set_defaults(run=_adapt)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # anywhere: parsing, importing torch, reading, predicting
        return _interrupted()


def _main(argv: list[str] | None) -> int:
    numpy_blas_on_one_thread()
    for stream in (sys.stdout, sys.stderr):  # names that are not valid UTF-8 are shown, not a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    raw, sys.stdout = sys.stdout, _Output(sys.stdout)
    try:
        return _command(build_parser().parse_args(argv))
    finally:
        sys.stdout = raw


def _command(args: argparse.Namespace) -> int:
    try:
        code = args.run(args)
        sys.stdout.flush()  # here, not at exit: output that fit the buffer meets a closed pipe now
        return code
    except (KeyboardInterrupt, Cancelled):  # the commands that can continue say how themselves
        return _interrupted()
    except LungKDError as exc:
        return _error(exc)
    except BrokenPipeError:  # `lungkd ... | head` read what it wanted: end quietly, as a pipe's writer does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return EXIT_CLOSED_PIPE
    except Exception as exc:  # a failure of the disk, however a library words it, is said as one
        error = storage_error(exc)
        if error is None:
            raise
        return _error(error)


def _error(exc: LungKDError) -> int:
    if isinstance(exc, StorageError) and exc.problem.message.startswith(STANDARD_OUTPUT):
        _silence_output()
    print(f"lungkd: error: {exc}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
