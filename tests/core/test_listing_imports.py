"""The listing commands answer without torch, or numpy: `lungkd runs`, `recipes`, `models`, `--version` and
`--help` run in a fresh interpreter, which is then asked what it imported (importing torch alone takes seconds).
`lungkd predict` with a CNN6 imports what that model needs and no more."""
import subprocess
import sys
from pathlib import Path

import pytest

from recorded_experiment import recorded_experiment

DEMO_MODEL = Path(__file__).resolve().parents[2] / "resources" / "models" / "demo-cnn6"
HEAVY = ("torch", "torchaudio", "transformers", "scipy", "PySide6", "numpy")  # numpy: a quarter second here


def imported_after(*args: str, watch: tuple[str, ...] = HEAVY) -> tuple[str, set[str]]:
    """What `lungkd ARGS` printed, and which of the modules `watch` names (libraries or their modules) its
    interpreter imported."""
    code = ("import sys\nfrom lungkd.core.cli import main\ntry:\n    code = main(sys.argv[1:])\n"
            "except SystemExit as exit:\n    code = exit.code\n"
            "names = {m.split('.')[0] for m in sys.modules} | set(sys.modules)\n"
            f"print('IMPORTED', *sorted(names & {set(watch)!r}))\n"
            "sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    output, _, imported = result.stdout.rpartition("IMPORTED")
    return output, set(imported.split())


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A workspace with a finished experiment in its catalog, as `lungkd runs` lists it."""
    workspace = tmp_path_factory.mktemp("workspace")
    recorded_experiment(workspace, DEMO_MODEL, "listed")
    return workspace


@pytest.mark.parametrize("args", [["recipes"], ["recipes", "--path", "demo-cpu"], ["models"], ["models", "list"],
                                  ["--version"], ["--help"], ["runs", "--help"]])
def test_listing_commands_do_not_import_torch(args):
    output, imported = imported_after(*args)
    assert output.strip(), f"lungkd {' '.join(args)} printed nothing"
    assert imported == set(), f"lungkd {' '.join(args)} imported {', '.join(sorted(imported))}"


def test_runs_lists_the_experiments_and_their_runs_without_torch(workspace):
    output, imported = imported_after("runs", "--workspace", str(workspace))
    assert "listed" in output and "finished" in output
    assert imported == set()
    output, imported = imported_after("runs", "listed", "--epochs", "--workspace", str(workspace))
    assert "teacher" in output and "student" in output
    assert imported == set()


def test_models_lists_every_architecture_the_registry_builds():
    """The registry's classes are found when a model is built, not when it is listed: each name resolves."""
    from lungkd.core.models.registry import list_models
    from lungkd.core.models.classifiers import Classifier

    output, _ = imported_after("models")
    for info in list_models():
        assert info.name in output
        assert issubclass(info.classifier, Classifier)


def test_predict_with_a_cnn6_imports_neither_transformers_nor_scipy(tmp_path):
    """transformers (seconds and hundreds of MB) serves CLAP and AST only; scipy.signal (0.9 s and 32 MB with the
    scipy.stats it imports) is replaced in the analysis by core.analysis.spectra; the rest of scipy (0.3 s, which
    delayed the start of the command's helper) computes the segmentation and the checks, in that helper."""
    import numpy as np
    import soundfile as sf

    recording = tmp_path / "noise.wav"
    sf.write(recording, 0.1 * np.random.default_rng(0).standard_normal(15 * 4000), 4000)
    output, imported = imported_after("predict", str(DEMO_MODEL), str(recording), "--csv", "--out",
                                      str(tmp_path / "cycles.csv"), "--workspace", str(tmp_path / "ws"),
                                      watch=("torch", "transformers", "scipy"))
    assert (tmp_path / "cycles.csv").read_text().count("noise") >= 1
    assert imported == {"torch"}
