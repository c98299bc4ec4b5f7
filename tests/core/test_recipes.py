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


@pytest.mark.parametrize("change, expected", [
    ({"teachers": {"arch": "cnn6", "k": 2, "train": {"weight_averaging": True}}},
     r"\[teachers.train\] weight_averaging = true: Input should be a valid number"),
    ({"teachers": {"arch": "cnn6", "k": 2, "train": {"weight_averaging": 1.0}}},
     r"weight_averaging = 1.0: .*Fix: use a value less than 1.0"),
    ({"teachers": {"arch": "cnn6", "k": 2, "train": {"lr": float("nan")}}}, r"lr = nan: .*finite"),
    ({"teachers": {"arch": "cnn6", "k": 2, "train": {"lr": float("inf")}}}, r"lr = inf: .*finite"),
    ({"teachers": {"arch": "cnn6", "k": 2, "train": {"lr": 0.0}}}, r"lr = 0.0: .*Fix: use a value more than 0.0"),
    ({"data": {"synthetic": {"recordings": 0}}}, r"\[data.synthetic\] recordings = 0: .*at least 1"),
    ({"data": {"synthetic": {"recordings": 8, "label_noise": 1.0}}}, r"label_noise = 1.0: .*less than 1"),
    ({"device": "tpu"}, r'device = "tpu": device must be "auto"'),
    ({"second_generation": {"studnet": 1}}, r"unknown key \[second_generation\] studnet"),
    ({"students": [{"arch": "cnn6", "labels": "mean_2", "seeds": [1, 2, 1]}]},
     r"\[students 1\] seeds = \[1, 2, 1\]: a seed is listed twice"),
    ({"teachers": {"arch": "cnn6", "k": 2.0}}, r"\[teachers\] k = 2.0: .*whole number"),
], ids=["boolean weight averaging", "weight averaging 1", "lr nan", "lr inf", "lr 0", "no recordings",
        "label noise 1", "unknown device", "typo in second_generation", "a seed twice", "k = 2.0"])
def test_every_value_is_checked_at_load_with_the_key_the_value_and_what_is_allowed(change, expected):
    base = {"data": {"synthetic": {"recordings": 8}}, "teachers": {"arch": "cnn6", "k": 2}}
    with pytest.raises(RecipeError, match=expected):
        parse_experiment({**base, **change})


def test_teachers_train_together_by_default_on_a_gpu_only_and_as_written_otherwise():
    """On a CPU the batched model is slower than one teacher after another (bench/teachers_together.py)."""
    base = {"name": "t", "data": {"synthetic": {"recordings": 8}}}
    cnn6 = parse_experiment({**base, "teachers": {"arch": "cnn6", "k": 3}}).teachers
    assert cnn6.trains_together(on_gpu=True) and not cnn6.trains_together(on_gpu=False)
    forced = parse_experiment({**base, "teachers": {"arch": "cnn6", "k": 3, "together": True}}).teachers
    assert forced.trains_together(on_gpu=False)
    alone = parse_experiment({**base, "teachers": {"arch": "cnn6", "k": 3, "together": False}}).teachers
    assert not alone.trains_together(on_gpu=True)
    bts = parse_experiment({**base, "teachers": {"arch": "bts", "k": 3}}).teachers
    assert not bts.trains_together(on_gpu=True)
