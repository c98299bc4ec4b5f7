"""Recipes are checked whole when they load: errors that name the key, the value and what is allowed; run-wide
settings set once."""
import pytest

from lungkd.core.recipes import RecipeError, load_experiment, parse_experiment, parse_recipe
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


LATE_REFUSALS = [  # issue 22: values that were accepted at load and crashed later
    ({"teachers": {"arch": "cnn6", "k": 2, "pretrained": "/no/such/weights.pth"}},
     r'\[teachers\] pretrained = "/no/such/weights.pth": there is no file or folder /no/such/weights.pth'),
    ({"teachers": {"arch": "resnet18", "k": 2, "pretrained": "microsoft resnet 18!"}},
     r"neither a file or folder that exists nor a Hugging Face id \(owner/name, e.g. microsoft/resnet-18\)"),
    ({"teachers": {"arch": "cnn6", "k": 2, "pretrained": "qiuqiangkong/panns"}},
     r"CNN6 weights are not on the Hugging Face hub; download the PANNs weights"),
    ({"teachers": {"arch": "resnet18", "k": 2, "pretrained": "/etc/hostname"}},
     r"/etc/hostname is not a folder; resnet18 weights are a folder"),
    ({"students": [{"arch": "cnn6", "labels": "mean_2", "pretrained": "a/b/c/d"}]},
     r'\[students 1\] pretrained = "a/b/c/d": there is no file or folder'),
    ({"data": {"synthetic": {"recordings": 8, "seed": -1}}}, r"\[data.synthetic\] seed = -1: .*at least 0"),
    ({"data": {"synthetic": {"recordings": 8}, "split_seed": -1}}, r"\[data\] split_seed = -1: .*at least 0"),
    ({"students": [{"arch": "cnn6", "labels": "mean_2", "seeds": [1, 2**64]}]},
     r"\[students 1\] seeds = \[1, 18446744073709551616\]: seeds are whole numbers from 0 to 2147483647"),
]


@pytest.mark.parametrize("change, expected", LATE_REFUSALS,
                         ids=["a missing pth", "not a hub id", "cnn6 from the hub", "a file for a folder",
                              "a path of four parts", "synthetic seed -1", "split seed -1", "student seed 2^64"])
def test_pretrained_weights_and_seeds_are_checked_at_load(change, expected):
    base = {"data": {"synthetic": {"recordings": 8}}, "teachers": {"arch": "cnn6", "k": 2}}
    with pytest.raises(RecipeError, match=expected):
        parse_experiment({**base, **change})


def test_a_training_recipe_s_seed_and_pretrained_are_checked_at_load_and_a_good_hub_id_passes():
    base = {"data": {"synthetic": {"recordings": 8}}, "model": {"arch": "cnn6"}}
    with pytest.raises(RecipeError, match=r"seed = 2147483648: .*at most 2147483647"):
        parse_recipe({**base, "seed": 2**31})
    assert parse_recipe({**base, "seed": 2**31 - 1}).seed == 2**31 - 1
    assert parse_recipe({**base, "model": {"arch": "ast", "pretrained": "MIT/ast-finetuned-audioset-10-10-0.4593"}})


def test_lungkd_run_refuses_a_bad_pretrained_before_preparing_any_data(tmp_path):
    import subprocess
    import sys

    recipe = tmp_path / "bad.toml"
    recipe.write_text('name = "bad"\n[data]\nsynthetic = { recordings = 8 }\n'
                      '[teachers]\narch = "cnn6"\nk = 1\npretrained = "/no/such/Cnn6.pth"\n')
    result = subprocess.run([sys.executable, "-m", "lungkd.core.cli", "run", str(recipe), "--workspace",
                             str(tmp_path / "ws")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "there is no file or folder /no/such/Cnn6.pth" in result.stderr
    assert not (tmp_path / "ws").exists()  # nothing generated, prepared or started
