"""The `lungkd` command as a user runs it: a real subprocess, a real workspace."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

RECIPE = """
name = "cli-tiny"
selection = "last"
device = "auto"
[data]
synthetic = { recordings = 12, seed = 1 }
[model]
arch = "cnn6"
size = "tiny"
[train]
epochs = 2
batch_size = 16
"""


def lungkd(*args, env=None):
    return subprocess.run([sys.executable, "-m", "lungkd.core.cli", *map(str, args)], capture_output=True, text=True,
                          env=env)


@pytest.mark.slow
def test_train_prints_scores_per_epoch_and_saves_a_model_card(tmp_path):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(RECIPE)
    result = lungkd("train", recipe, "--workspace", tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("epoch   1/2  loss ") and "test Sp" in lines[0] and "Score" in lines[0]
    assert lines[1].startswith("epoch   2/2")
    assert lines[2].startswith("selected epoch 2 (last): test Sp")
    assert "No GPU found: training on the CPU" in result.stderr
    model_dir = Path(lines[3].removeprefix("model saved to "))
    card = json.loads((model_dir / "lungkd.json").read_text())
    assert card["architecture"] == "cnn6" and card["selection"] == "last" and card["selected_epoch"] == 2
    assert card["classes"] == ["normal", "crackle", "wheeze", "both"] and card["training_labels"] == "hard"
    evaluated = lungkd("evaluate", model_dir, tmp_path / "ws" / "datasets" / "synthetic-12-seed1-noise0", "--json",
                       "--workspace", tmp_path / "ws")
    assert evaluated.returncode == 0, evaluated.stderr
    scores = json.loads(evaluated.stdout)
    assert scores["score"] == pytest.approx(card["test"]["score"])
    assert scores["bootstrap"]["low"] <= scores["score"] <= scores["bootstrap"]["high"]


def test_a_bad_recipe_names_the_key(tmp_path):
    recipe = tmp_path / "bad.toml"
    recipe.write_text(RECIPE.replace('arch = "cnn6"', 'arch = "cnn7"'))
    result = lungkd("train", recipe, "--workspace", tmp_path / "ws")
    assert result.returncode == 2
    assert '[model] arch = "cnn7"' in result.stderr and "use one of: 'cnn6', 'resnet18'" in result.stderr


def test_models_lists_the_registry_with_spec_counts():
    result = lungkd("models")
    assert result.returncode == 0
    for name in ("cnn6", "resnet18", "efficientnet_b0", "ast", "audio_clap", "bts"):
        assert f"\n{name}" in "\n" + result.stdout
    assert "153,496,990" in result.stdout and "153.0M" in result.stdout
    assert "docs/method.md section 6" in result.stdout and "SPEC" not in result.stdout  # docs the project carries
    assert (Path(__file__).parents[2] / "docs" / "method.md").read_text().count("## 6. Architectures") == 1


def test_default_workspace_is_the_user_data_folder_unless_overridden(tmp_path, monkeypatch):
    from platformdirs import user_data_dir

    from lungkd.core.workspace.paths import ENV_VAR, default_workspace, resolve_workspace

    monkeypatch.delenv(ENV_VAR, raising=False)
    assert default_workspace() == Path(user_data_dir("LungKD", appauthor=False)) / "workspace"
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "elsewhere"))
    assert resolve_workspace(None) == tmp_path / "elsewhere" and (tmp_path / "elsewhere").is_dir()
    assert resolve_workspace(tmp_path / "given") == tmp_path / "given"


def test_data_synth_writes_a_folder_that_data_stats_reads(tmp_path):
    out = tmp_path / "synthetic"
    written = lungkd("data", "synth", "--out", out, "--recordings", 6, "--seed", 2, "--label-noise", 0.2)
    assert written.returncode == 0, written.stderr
    assert "Wrote 6 recordings" in written.stdout
    stats = json.loads(lungkd("data", "stats", out, "--json").stdout)
    assert stats["recordings"] == 6 and stats["warnings"] == [] and stats["name_matches"] == []
    assert sum(stats["cycles"]["train"].values()) + sum(stats["cycles"]["test"].values()) == \
        sum(stats["cycles"]["all"].values()) > 0
    assert (out / "ICBHI_challenge_train_test.txt").exists() and (out / "metadata_with_location.txt").exists()


def test_version_prints_lungkd_torch_qt_transformers_and_the_device():
    import tomllib
    from importlib import metadata

    import torch

    result = lungkd("--version")
    assert result.returncode == 0, result.stderr
    facts = dict(line.split(None, 1) for line in result.stdout.splitlines())
    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    assert facts["LungKD"] == project["version"]
    assert facts["torch"].startswith(torch.__version__)
    assert facts["transformers"] == metadata.version("transformers")
    assert facts["Qt"] == f"PySide6 {metadata.version('PySide6-Essentials')}"
    if torch.cuda.is_available():
        assert facts["Device"].startswith(f"GPU: {torch.cuda.get_device_name(0)}")
    else:
        assert facts["Device"].startswith("CPU") and "no GPU found" in facts["Device"]


def test_version_names_qt_without_loading_it():
    code = ("import sys\nfrom lungkd.core.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
            "print('loaded:', sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Qt            PySide6 " in result.stdout and "loaded: []" in result.stdout
