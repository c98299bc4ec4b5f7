"""Recipes are checked whole when they load: errors that name the key, the value and what is allowed; run-wide
settings set once."""
import pytest

from lungkd.core.recipes import RecipeError, load_experiment, parse_experiment
from tiny_recipe import tiny_recipe


def test_recipe_errors_name_the_key_and_the_allowed_values(tmp_path):
    base = {"data": {"synthetic": {"recordings": 8}}, "teachers": {"arch": "cnn6", "k": 2}}
    with pytest.raises(RecipeError, match=r'\[teachers\] arch = "vgg".*use one of: .cnn6., .resnet18.'):
        parse_experiment({**base, "teachers": {"arch": "vgg", "k": 2}})
    with pytest.raises(RecipeError, match=r"labels = 'mean_5' needs 5 teachers, but \[teachers\] k = 2"):
        parse_experiment({**base, "students": [{"arch": "cnn6", "labels": "mean_5"}]})
    with pytest.raises(RecipeError, match=r'selection = "best".*use one of: .best_test., .best_val. or .last.'):
        parse_experiment({**base, "selection": "best"})
    with pytest.raises(RecipeError, match=r"unknown key \[teachers.train\] seed\b"):  # seeds are 1..k, set once
        parse_experiment({**base, "teachers": {"arch": "cnn6", "k": 2, "train": {"seed": 3}}})
    with pytest.raises(RecipeError, match=r"unknown key \[teachers.train\] epoch\b"):
        parse_experiment({**base, "teachers": {"arch": "cnn6", "k": 2, "train": {"epoch": 3}}})
    with pytest.raises(RecipeError, match=r'\[teachers.train\] lr = "fast".*use a number'):
        parse_experiment({**base, "teachers": {"arch": "cnn6", "k": 2, "train": {"lr": "fast"}}})
    with pytest.raises(RecipeError, match=r"\[teachers.train\] epochs = 4.5.*whole number"):
        parse_experiment({**base, "teachers": {"arch": "cnn6", "k": 2, "train": {"epochs": 4.5}}})
    with pytest.raises(RecipeError, match=r"needs a \[teachers\] table"):  # never a silent default
        parse_experiment({"data": base["data"]})
    with pytest.raises(RecipeError, match=r"unknown key \[ensembles\] curated_kk"):
        parse_experiment({**base, "ensembles": {"curated_kk": 2}})
    with pytest.raises(RecipeError, match=r'name = "../../x": names are 1 to 64 letters'):
        parse_experiment({**base, "name": "../../x"})


def test_run_wide_settings_are_set_once_and_reach_every_run(tmp_path):
    """selection, device and determinism live at the top of the recipe only: a changed recipe changes
    every job built from it (teachers and students alike)."""
    from lungkd.core.kd.experiment import plan_jobs, student_specs, teacher_specs
    from lungkd.core.kd.store import ExperimentStore

    recipe = load_experiment(tiny_recipe(tmp_path)).replace(selection="best_val", device="cpu")
    store = ExperimentStore(tmp_path / "ws", recipe)
    store.data_fingerprint = "f"
    jobs = plan_jobs(teacher_specs(recipe), "teachers", recipe, store) + \
        plan_jobs(student_specs(recipe.students[0]), "students", recipe, store)
    assert {(j.settings.selection, j.settings.device, j.settings.deterministic) for j in jobs} == {
        ("best_val", "cpu", True)}
    assert all("selection" not in j.spec.train.model_dump() for j in jobs)
