"""`lungkd` on the command line: the headless face of the engine."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lungkd.core.cancel import Cancelled, CancelToken
from lungkd.core.errors import LungKDError
from lungkd.core.labels import CLASS_NAMES


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
        print(json.dumps(stats, indent=2))
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


def _train(args: argparse.Namespace) -> int:
    from lungkd.core.recipes import load_recipe
    from lungkd.core.training.single_run import train_from_recipe
    from lungkd.core.training.trainer import Progress
    from lungkd.core.workspace.paths import resolve_workspace

    recipe = load_recipe(args.recipe)
    workspace = resolve_workspace(args.workspace)

    def show(p: Progress) -> None:
        if p.stage == "notice":
            print(f"note: {p.message}", file=sys.stderr)
        elif p.stage == "epoch":
            metrics = p.metrics or {}
            line = f"epoch {p.epoch:>3}/{p.epochs}  loss {p.loss:.4f}  test {_format_scores(metrics.get('test'))}"
            if metrics.get("val"):
                line += f"  val {_format_scores(metrics['val'])}"
            print(line, flush=True)

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
    print(f"model saved to {model_dir}")
    return 0


def _models(args: argparse.Namespace) -> int:
    from lungkd.core.models.registry import models_table

    print(models_table())
    return 0


class _StageProgress:
    """One progress bar per stage and run on a terminal; plain lines (one per epoch) elsewhere."""

    def __init__(self, stream=sys.stdout):
        self.stream = stream
        self.tty = stream.isatty()
        self.open_bar = False

    def _line(self, text: str) -> None:
        if self.open_bar:
            self.stream.write("\n")
            self.open_bar = False
        print(text, file=self.stream, flush=True)

    def __call__(self, event) -> None:
        where = f"[{event.stage}{' ' + event.run if event.run else ''}]"
        if event.kind == "progress" and event.total:
            if not self.tty:
                return
            done = event.step / event.total
            eta = f" ETA {_duration(event.eta_s)}" if event.eta_s is not None else ""
            bar = "#" * int(30 * done)
            self.stream.write(f"\r{where} |{bar:<30}| {100 * done:5.1f}%{eta}   ")
            self.stream.flush()
            self.open_bar = True
        elif event.kind == "metrics" and "epoch" in event.data:
            test = event.data.get("test")
            self._line(f"{where} epoch {event.data['epoch']}/{event.total}  loss {event.data['loss']:.4f}  "
                       f"test {_format_scores(test)}")
        elif event.kind == "metrics":
            self._line(f"{where} {_format_scores(event.data)}")
        elif event.kind in ("started", "finished", "failed", "notice") and (event.message or event.kind != "notice"):
            self._line(f"{where} {event.kind}{': ' + event.message if event.message else ''}")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def shipped_recipe(name: str) -> Path:
    """A recipe of resources/recipes/ (package data of lungkd.resources)."""
    from importlib.resources import files

    return Path(str(files("lungkd.resources") / "recipes" / f"{name}.toml"))


def _demo(args: argparse.Namespace) -> int:
    args.recipe, args.data = shipped_recipe("demo-cpu"), None
    print(f"Running the CPU demo ({args.recipe}): tiny CNN6 teachers, their ensemble and a distilled student "
          "on a generated dataset.", flush=True)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    from lungkd.core.kd.experiment import Experiment
    from lungkd.core.recipes import load_experiment
    from lungkd.core.workspace.paths import resolve_workspace

    recipe = load_experiment(args.recipe)
    if args.data:
        recipe = recipe.replace(data=recipe.data.replace(path=str(args.data), synthetic=None))
    cancel = CancelToken()
    experiment = Experiment(recipe, resolve_workspace(args.workspace), _StageProgress(), cancel)
    try:
        experiment.run()
    except (KeyboardInterrupt, Cancelled):
        cancel.cancel()
        print("stopped; run the same command again to continue where it left off.", file=sys.stderr)
        return 130
    print(f"report: {experiment.folder / 'report.md'}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from lungkd.core.workspace.layout import experiment_folder
    from lungkd.core.workspace.paths import resolve_workspace

    folder = experiment_folder(resolve_workspace(args.workspace), args.id)
    path = folder / ("report.json" if args.json else "report.md")
    if not path.exists():
        raise LungKDError(f"experiment '{args.id}' has no report yet.", path=folder,
                          fix="run its recipe to the end with `lungkd run RECIPE.toml`; `lungkd runs` lists them.")
    print(path.read_text(encoding="utf-8"), end="")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from lungkd.core.features.cache import FeatureCache
    from lungkd.core.analysis.evaluation import evaluate_model
    from lungkd.core.workspace.paths import resolve_workspace

    result = evaluate_model(args.model, args.data, split=args.split,
                            cache=FeatureCache(resolve_workspace(args.workspace) / "cache"))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(f"{result.architecture} on {result.data} ({result.split}, {result.cycles} cycles)")
    print(f"  {result.scores}   95% patient bootstrap interval of the Score: "
          f"[{result.interval.low:.2f}, {result.interval.high:.2f}]")
    print("  confusion (rows true, columns predicted: normal crackle wheeze both)")
    for name, row in zip(("normal", "crackle", "wheeze", "both"), result.scores.confusion):
        print(f"  {name:<8}" + "".join(f"{n:>8}" for n in row))
    return 0


def _runs(args: argparse.Namespace) -> int:
    from lungkd.core.workspace.catalog import Catalog

    with Catalog.for_workspace(args.workspace) as catalog:
        experiments = catalog.experiments()
        if args.json:
            print(json.dumps([{"name": e.name, "status": e.status, "folder": str(e.folder), "updated": e.updated,
                               "summary": e.summary} for e in experiments], indent=2))
            return 0
        if not experiments:
            print("no experiments yet; start one with `lungkd run RECIPE.toml`")
            return 0
        print(f"{'experiment':<28}{'status':<11}{'teachers':>9}{'ensemble':>14}  students (distilled / hard)")
        for e in experiments:
            s = e.summary or {}
            ensemble = s.get("ensemble")
            students = ", ".join(f"{g['arch']} {g['labels']} {_f(g['score'])}/{_f(g['hard'])}"
                                 for g in s.get("students", []))
            print(f"{e.name:<28}{e.status:<11}{_f(s.get('teachers')):>9}"
                  f"{(_f(ensemble['score']) + ' (k=' + str(ensemble['k']) + ')') if ensemble else '—':>14}  {students}")
    return 0


def _f(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def _how_sure(analysis) -> str:
    if analysis.fallback_reason:
        return f" ({analysis.fallback_reason})"
    if analysis.segmentation_confidence is None:
        return ""
    return (f" ({analysis.segmentation_confidence:.0%} sure, breathing every {analysis.breathing_period:.1f} s)")


def _unlike(analysis) -> str:
    if not analysis.unlike_training:
        return ""
    return (f"; UNLIKE the model's training data (median distance {analysis.training_distance:.1f}, "
            f"limit {analysis.distance_limit:.1f}): do not trust these predictions")


def _predict(args: argparse.Namespace) -> int:
    from lungkd.core.analysis.limits import load_model_with_limits
    from lungkd.core.analysis.predict import analyse_recording, to_json, write_csv

    model, limits = load_model_with_limits(args.model)
    print(f"note: {args.model} was trained on {limits.notes.trained_on}", file=sys.stderr)
    for warning in limits.notes.warnings():
        print(f"note: {warning}", file=sys.stderr)
    analyses, failures = [], 0
    for recording in args.recordings:
        try:
            analyses.append(analyse_recording(recording, model, limits=limits))
        except LungKDError as exc:  # one bad file among many: say so, go on with the rest
            print(f"lungkd: error: {exc}", file=sys.stderr)
            failures += 1
    if args.csv:
        write_csv(analyses, sys.stdout if args.csv == "-" else args.csv)
    elif args.json:
        print(to_json(analyses))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lungkd", description="Lung-sound classifiers distilled from ensembles.")
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
    train.add_argument("recipe", type=Path, help="a .toml training recipe (see resources/recipes/)")
    train.add_argument("--workspace", type=Path, help="workspace folder (default: the user data folder)")
    train.set_defaults(run=_train)

    run = commands.add_parser("run", help="run an experiment recipe: teachers, soft labels, students (resumable)")
    run.add_argument("recipe", type=Path, help="an experiment .toml (see resources/recipes/)")
    run.add_argument("--workspace", type=Path, help="workspace folder (default: the user data folder)")
    run.add_argument("--data", type=Path, help="use this dataset folder instead of the recipe's [data] path")
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
    form.add_argument("--csv", nargs="?", const="-", help="CSV to a file (or standard output)")
    form.add_argument("--json", action="store_true")
    predict.set_defaults(run=_predict)

    models = commands.add_parser("models", help="list the model architectures")
    models.set_defaults(run=_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except LungKDError as exc:
        print(f"lungkd: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
