"""`lungkd` on the command line: the headless face of the engine."""
from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

from lungkd.core.cancel import Cancelled, CancelToken
from lungkd.core.errors import LungKDError
from lungkd.core.labels import CLASS_NAMES
from lungkd.core.storage import json_text


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
    if stats["warnings"]:
        print(f"  {len(stats['warnings'])} warning(s):")
        for warning in stats["warnings"]:
            print(f"    {warning}")


def _data_stats(args: argparse.Namespace) -> int:
    from lungkd.core.data.dataset import load_dataset

    stats = load_dataset(args.path).stats()
    if args.json:
        print(json_text(stats))
    else:
        _print_stats(stats)
    return 0


def _data_synth(args: argparse.Namespace) -> int:
    from lungkd.core.data.synth import write_synthetic_dataset

    summary = write_synthetic_dataset(args.out, recordings=args.recordings, seed=args.seed,
                                      label_noise=args.label_noise)
    print(f"Wrote {summary.recordings} recordings of {summary.patients} patients to {Path(args.out)}")
    return 0


def _format_scores(scores: dict | None) -> str:
    if not scores or scores["score"] is None:
        return "n/a"
    return f"Sp {scores['sp']:6.2f}  Se {scores['se']:6.2f}  Score {scores['score']:6.2f}"


class _Bar:
    """A progress bar redrawn in place on a terminal; nothing elsewhere (logs keep one line per epoch)."""

    def __init__(self, stream=sys.stdout):
        self.stream = stream
        self.tty = stream.isatty()
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
        if self.open:
            self.stream.write("\n")
            self.open = False
        print(text, file=stream or self.stream, flush=True)


def _train(args: argparse.Namespace) -> int:
    from lungkd.core.recipes import find_recipe, load_recipe
    from lungkd.core.training.single_run import train_from_recipe
    from lungkd.core.training.trainer import Progress
    from lungkd.core.workspace.paths import resolve_workspace

    recipe = load_recipe(find_recipe(args.recipe))
    workspace = resolve_workspace(args.workspace)
    bar = _Bar()

    def show(p: Progress) -> None:
        if p.stage == "notice":
            bar.line(f"note: {p.message}", sys.stderr)
        elif p.stage == "train":
            bar.draw(f"epoch {p.epoch:>3}/{p.epochs}", p.step / p.steps, p.eta_s)
        elif p.stage == "epoch":
            metrics = p.metrics or {}
            line = f"epoch {p.epoch:>3}/{p.epochs}  loss {p.loss:.4f}  test {_format_scores(metrics.get('test'))}"
            if metrics.get("val"):
                line += f"  val {_format_scores(metrics['val'])}"
            bar.line(line)

    cancel = CancelToken()
    try:
        result, model_dir = train_from_recipe(recipe, workspace, show, cancel)
    except KeyboardInterrupt:
        cancel.cancel()
        print("interrupted; run the same command again to resume from the last finished epoch.", file=sys.stderr)
        return 130
    except Cancelled as exc:
        print(f"lungkd: {exc}", file=sys.stderr)
        return 130
    final = result.scores.to_dict() if result.scores else None
    print(f"selected epoch {result.selected_epoch} ({result.selection}): test {_format_scores(final)}")
    if result.selection_note:
        print(f"note: {result.selection_note}.")
    print(f"model saved to {model_dir}")
    return 0


def _models(args: argparse.Namespace) -> int:
    from lungkd.core.models.registry import models_table

    print(models_table())
    return 0


class _StageProgress:
    """Each event as a sentence; on a terminal also a bar for the model in training (runs training at once,
    on an executor with several workers, share the line, each with its percentage), with the time left for the
    whole experiment."""

    def __init__(self, stream=sys.stdout):
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
        elif (sentence := describe(event)) is not None:
            self.bar.line(sentence)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def _recipes(args: argparse.Namespace) -> int:
    from lungkd.core.recipes import shipped_recipes

    for kind, command in (("experiment", "lungkd run NAME"), ("training", "lungkd train NAME")):
        print(f"{kind} recipes ({command}):")
        for recipe in (r for r in shipped_recipes() if r.kind == kind):
            print(f"  {recipe.name:<22}{recipe.description}")
    print("A shipped recipe is run by its name; copy its file (`lungkd recipes --path NAME` prints where it is) "
          "to change it.")
    return 0


def _recipe_path(args: argparse.Namespace) -> int:
    from lungkd.core.recipes import find_recipe

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
    from lungkd.core.kd.report import headline
    from lungkd.core.recipes import find_recipe, load_experiment
    from lungkd.core.workspace.paths import resolve_workspace

    recipe = load_experiment(find_recipe(args.recipe))
    if args.data:
        recipe = recipe.replace(data=recipe.data.replace(path=str(args.data), synthetic=None))
    # --address names a Ray cluster, so it alone chooses the ray executor
    name = getattr(args, "executor", None) or ("ray" if getattr(args, "address", None) else None) or \
        recipe.executor or "process"
    executor = create_executor(name, workers=getattr(args, "workers", None) or recipe.workers,
                               address=getattr(args, "address", None))
    cancel = CancelToken()
    experiment = Experiment(recipe, resolve_workspace(args.workspace), _StageProgress(), cancel, executor)
    try:
        report = experiment.run()
    except (KeyboardInterrupt, Cancelled):
        cancel.cancel()
        print("stopped; run the same command again to continue where it left off.", file=sys.stderr)
        return 130
    finally:
        executor.close()
    print(f"\nResult of {recipe.name} ({report['selection']}, {report['test_cycles']} test cycles):")
    for line in headline(report):
        print(f"  {line}")
    print(f"report: {experiment.folder / 'report.md'} (and report.html beside it)")
    return 0


def _report(args: argparse.Namespace) -> int:
    from lungkd.core.kd.store import resume_command
    from lungkd.core.workspace.layout import experiment_folder
    from lungkd.core.workspace.paths import existing_workspace

    workspace = existing_workspace(args.workspace)
    folder = experiment_folder(workspace, args.id) if workspace else None
    if folder is None or not folder.is_dir():
        raise LungKDError(f"there is no experiment '{args.id}' in the workspace "
                          f"{workspace or 'yet (the default workspace does not exist)'}.",
                          fix="`lungkd runs` lists the experiments; give --workspace DIR for another workspace.")
    path = folder / ("report.json" if args.json else "report.md")
    if not path.exists():
        raise LungKDError(f"experiment '{args.id}' has no report yet: it has not run to the end.", path=folder,
                          fix=f"continue it with `{resume_command(workspace, folder)}`.")
    print(path.read_text(encoding="utf-8"), end="")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from lungkd.core.features.cache import FeatureCache
    from lungkd.core.analysis.evaluation import evaluate_model
    from lungkd.core.workspace.paths import existing_workspace, resolve_workspace

    workspace = existing_workspace(args.workspace) or resolve_workspace(None)  # the default one may be new
    result = evaluate_model(args.model, args.data, split=args.split, cache=FeatureCache(workspace / "cache"))
    if args.json:
        print(json_text(result.to_dict()))
        return 0
    print(f"{result.architecture} on {result.data} ({result.split}, {result.cycles} cycles)")
    print(f"  {result.scores}   95% patient bootstrap interval of the Score: "
          f"[{result.interval.low:.2f}, {result.interval.high:.2f}]")
    print("  confusion (rows true, columns predicted: normal crackle wheeze both)")
    for name, row in zip(("normal", "crackle", "wheeze", "both"), result.scores.confusion):
        print(f"  {name:<8}" + "".join(f"{n:>8}" for n in row))
    return 0


def _runs(args: argparse.Namespace) -> int:
    from lungkd.core.kd.store import status_text
    from lungkd.core.workspace.catalog import CATALOG_FILE, Catalog
    from lungkd.core.workspace.paths import existing_workspace

    workspace = existing_workspace(args.workspace)
    experiments = []
    if workspace is not None and (workspace / CATALOG_FILE).is_file():
        with Catalog(workspace / CATALOG_FILE) as catalog:
            experiments = catalog.experiments()
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
        s = e.summary or {}
        ensemble = s.get("ensemble")
        students = ", ".join(f"{g['arch']} {g['labels']} {_f(g['score'])}/{_f(g['hard'])}"
                             for g in s.get("students", []))
        print(f"{e.name:<28}{_f(s.get('teachers')):>9}"
              f"{(_f(ensemble['score']) + ' (k=' + str(ensemble['k']) + ')') if ensemble else '—':>14}  "
              f"{students or '—'}  {state}")
    return 0


def _f(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def _how_sure(analysis) -> str:
    if analysis.fallback_reason:
        return f" ({analysis.fallback_reason})"
    if analysis.segmentation_confidence is None:
        return ""
    return (f" ({analysis.segmentation_confidence:.0%} sure, breathing every {analysis.breathing_period:.1f} s)")


def _check_output(out: Path, inputs: list[Path], force: bool) -> None:
    """An output file may never be one of the inputs, and replaces an existing file only with --force."""
    for given in inputs:
        if out.resolve() == given.resolve() or (out.exists() and given.exists() and out.samefile(given)):
            raise LungKDError("the output file is one of the inputs; writing it would destroy that input.",
                              path=out, fix="give --out a new file name, e.g. predictions.csv.")
        if given.is_dir() and out.resolve().is_relative_to(given.resolve()):
            raise LungKDError("the output file would go inside an input folder.", path=out,
                              fix="write it elsewhere, e.g. --out predictions.csv in the current folder.")
    if out.is_dir():
        raise LungKDError("the output is a folder.", path=out, fix="give a file name, e.g. predictions.csv.")
    if out.exists() and not force:
        raise LungKDError("the output file exists already.", path=out,
                          fix="give another name, or add --force to replace it.")


def _unlike(analysis) -> str:
    if not analysis.unlike_training:
        return ""
    return (f"; UNLIKE the model's training data (median distance {analysis.training_distance:.1f}, "
            f"limit {analysis.distance_limit:.1f}): do not trust these predictions")


def _predict(args: argparse.Namespace) -> int:
    from lungkd.core.analysis.limits import load_model_with_limits
    from lungkd.core.analysis.predict import analyse_recording, to_json, write_csv
    from lungkd.core.data.audio import distinct_recordings
    from lungkd.core.storage import write_text_atomic

    if args.out is not None:
        if not (args.csv or args.json):
            raise LungKDError("--out needs --csv or --json to say what to write.",
                              fix="add --csv (one row per cycle) or --json.")
        _check_output(args.out, [args.model, *args.recordings], args.force)
    recordings, duplicates = distinct_recordings(args.recordings)
    for problem in duplicates:
        print(f"lungkd: warning: {problem}", file=sys.stderr)
    model, limits = load_model_with_limits(args.model)
    print(f"note: {args.model} was trained on {limits.notes.trained_on}", file=sys.stderr)
    for warning in limits.notes.warnings():
        print(f"note: {warning}", file=sys.stderr)
    analyses, failures = [], 0
    for recording in recordings:
        try:
            analyses.append(analyse_recording(recording, model, limits=limits))
        except LungKDError as exc:  # one bad file among many: say so, go on with the rest
            print(f"lungkd: error: {exc}", file=sys.stderr)
            failures += 1
    if args.csv or args.json:
        text = io.StringIO()
        if args.csv:
            write_csv(analyses, text)
        else:
            text.write(to_json(analyses) + "\n")
        if args.out is None:
            sys.stdout.write(text.getvalue())
        else:  # whole or not at all: an interrupted run never leaves half a file in its place
            write_text_atomic(args.out, text.getvalue())
            print(f"wrote {sum(len(a.cycles) for a in analyses)} cycles to {args.out}", file=sys.stderr)
    else:
        for a in analyses:
            print(f"{a.name}: {len(a.cycles)} cycles from {a.cycle_source}{_how_sure(a)}, "
                  + ", ".join(f"{k} {v}" for k, v in a.class_counts().items()) + _unlike(a))
            for c in a.cycles:
                truth = "" if c.truth is None else f"  (annotated {CLASS_NAMES[c.truth]})"
                bounds = "" if c.segmentation_confidence is None else f"  (bounds {c.segmentation_confidence:.0%} sure)"
                unlike = "  (unlike the training data)" if c.unlike_training else ""
                print(f"  {c.start:8.3f}-{c.end:8.3f} s  {CLASS_NAMES[c.predicted]:<8} {c.confidence:6.1%}"
                      f"{truth}{bounds}{unlike}")
    return 1 if failures else 0


class _PrintVersion(argparse.Action):
    """`--version`: the facts of core.about, gathered only when asked (importing torch takes seconds)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from lungkd.core.about import gather_about

        print(gather_about().text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lungkd", description="Lung-sound classifiers distilled from ensembles.")
    parser.add_argument("--version", action=_PrintVersion,
                        help="print the versions of LungKD, torch, Qt and transformers and the device found")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="inspect or generate datasets").add_subparsers(dest="data_command",
                                                                                          required=True)
    stats = data.add_parser("stats", help="recordings, patients and cycles per split and class")
    stats.add_argument("path", type=Path, help="an ICBHI folder or a folder of recordings with .txt annotations")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.set_defaults(run=_data_stats)

    synth = data.add_parser("synth", help="write a synthetic dataset in ICBHI layout")
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--recordings", type=int, default=120)
    synth.add_argument("--seed", type=int, default=0)
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

    runs = commands.add_parser("runs", help="list the workspace's experiments with status and Scores")
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
    evaluate.add_argument("data", type=Path, help="a dataset folder")
    evaluate.add_argument("--split", default="test", help="train, test or val (default test)")
    evaluate.add_argument("--json", action="store_true")
    evaluate.add_argument("--workspace", type=Path)
    evaluate.set_defaults(run=_evaluate)

    predict = commands.add_parser("predict", help="per-cycle predictions with probabilities for recordings")
    predict.add_argument("model", type=Path, help="a model folder")
    predict.add_argument("recordings", type=Path, nargs="+", help="wav, flac or ogg files")
    form = predict.add_mutually_exclusive_group()
    form.add_argument("--csv", action="store_true", help="one CSV row per cycle (to standard output, or --out)")
    form.add_argument("--json", action="store_true", help="JSON (to standard output, or --out)")
    predict.add_argument("--out", "-o", type=Path, metavar="FILE",
                         help="write the CSV or JSON to FILE; never one of the inputs")
    predict.add_argument("--force", action="store_true", help="replace FILE when it exists")
    predict.set_defaults(run=_predict)

    models = commands.add_parser("models", help="list the model architectures")
    models.set_defaults(run=_models)

    recipes = commands.add_parser("recipes", help="list the shipped recipes with their descriptions")
    recipes.add_argument("--path", metavar="NAME", help="print where the shipped recipe NAME is (to copy it)")
    recipes.set_defaults(run=lambda args: _recipe_path(args) if args.path else _recipes(args))
    return parser


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # names that are not valid UTF-8 are shown, not a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    try:
        code = args.run(args)
        sys.stdout.flush()  # here, not at exit: output that fit the buffer meets a closed pipe now
        return code
    except LungKDError as exc:
        print(f"lungkd: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `lungkd ... | head` read what it wanted: end quietly, as a pipe's writer does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 141


if __name__ == "__main__":
    sys.exit(main())
