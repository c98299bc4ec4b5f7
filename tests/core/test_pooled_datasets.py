"""Several datasets in one recipe (`[[data]]`): the schema, the pooled index each cycle of which knows its dataset,
each dataset split by its own rules; recipes of one `[data]` table store and dump exactly as before."""
import tomllib

import pytest

from lungkd.core.data.sources import DataSpec, SyntheticData, resolve_dataset
from lungkd.core.features.cycle_sets import build_cycle_sets
from lungkd.core.models.registry import model_info
from lungkd.core.recipes import RecipeError, load_experiment, parse_experiment, recipe_to_toml, shipped_recipes_folder

OLD_DATA_KEYS = {"path", "synthetic", "split", "test_fraction", "split_seed", "val_fraction", "calibration_fraction",
                 "location_source", "missing"}
TEACHERS = '[teachers]\narch = "cnn6"\nsize = "tiny"\nk = 1\n'


def _recipe(text: str):
    return parse_experiment(tomllib.loads(text + TEACHERS))


def test_a_recipe_of_one_data_table_stores_and_writes_as_before():
    recipe = load_experiment(shipped_recipes_folder() / "demo-cpu.toml")
    stored = recipe.to_dict()
    assert set(stored["data"]) == OLD_DATA_KEYS and set(stored["data"]["synthetic"]) == {"recordings", "seed",
                                                                                          "label_noise"}
    assert "evaluate" not in stored and "evaluate" not in recipe.model_dump()
    assert "evaluate" not in recipe_to_toml(recipe) and "layout" not in recipe_to_toml(recipe)


def test_several_datasets_are_a_list_of_data_tables_that_write_back_to_themselves():
    recipe = _recipe('[[data]]\nname = "A"\nsynthetic = { recordings = 8, seed = 1 }\n'
                     '[[data]]\npath = "/data/SPRSound"\nlabel_map = { Stridor = "none" }\n'
                     '[[evaluate]]\npath = "/data/HF_Lung_V1"\n')
    assert [d.name for d in recipe.data] == ["A", None] and recipe.data[1].label_map == {"Stridor": "none"}
    again = parse_experiment(tomllib.loads(recipe_to_toml(recipe)))
    assert again.to_dict() == recipe.to_dict() and again.evaluate == recipe.evaluate
    without = recipe.replace(evaluate=())  # the datasets evaluated on are not part of the results' identity
    assert without.to_dict() == recipe.to_dict()


@pytest.mark.parametrize("text, message", [
    ('[[data]]\npath = "/a/x"\n[[data]]\npath = "/b/x"\n', "two datasets are named 'x'; give each [[data]] entry"),
    ('[[data]]\npath = "/a"\n[[data]]\npath = "/b"\nmissing = "unknown"\n', "the same missing and location_source"),
    ('[[data]]\npath = "/a"\nlabel_map = { Rhonchi = "wheezy" }\n', "[data 1.label_map] Rhonchi = \"wheezy\""),
    ('[data]\npath = "/a"\nformat = "wav"\n', "[data] format = \"wav\""),
    ('[data]\npath = "/a"\nsplitt = "patient"\n', "unknown key [data] splitt"),
])
def test_bad_data_tables_are_refused_by_key(text, message):
    with pytest.raises(RecipeError) as caught:
        _recipe(text)
    assert message in str(caught.value)


@pytest.fixture(scope="module")
def pooled(tmp_path_factory):
    workspace = tmp_path_factory.mktemp("ws")
    specs = (DataSpec(name="icbhi", synthetic=SyntheticData(recordings=10, seed=2)),
             DataSpec(name="table", synthetic=SyntheticData(recordings=10, seed=3, layout="table"), test_fraction=0.3))
    return specs, resolve_dataset(specs, workspace), workspace


def test_the_pooled_index_keeps_each_recording_s_dataset_under_a_name_of_its_own(pooled):
    specs, index, workspace = pooled
    alone = {spec.name: resolve_dataset(spec, workspace) for spec in specs}
    assert [r.name for r in index.recordings] == sorted(f"{name}/{r.name}" for name, part in alone.items()
                                                        for r in part.recordings)
    for rec in index.recordings:
        original = alone[rec.dataset].recording(rec.name.split("/", 1)[1])
        assert rec.patient == f"{rec.dataset}/{original.patient}" and rec.split == original.split
        assert [(c.recording, c.start, c.label) for c in rec.cycles] == [(rec.name, c.start, c.label)
                                                                         for c in original.cycles]
    stats = index.stats()
    assert {name: counts["all"] for name, counts in stats["datasets"].items()} == {
        name: part.stats()["cycles"]["all"] for name, part in alone.items()}


def test_each_dataset_is_split_by_its_own_rules(pooled):
    _, index, _ = pooled
    # the ICBHI layout has its split file; the table has none and is split patient-wise, which a warning says
    assert {r.split for r in index.recordings if r.dataset == "icbhi"} >= {"train", "test"}
    table = [r for r in index.recordings if r.dataset == "table"]
    assert {r.split for r in table} >= {"train", "test"}
    for patient in {r.patient for r in table}:
        assert len({r.split for r in table if r.patient == patient} - {"calibration"}) == 1
    assert [w for w in index.warnings if "no official split" in w.message]


def test_every_cycle_of_a_pooled_set_knows_its_dataset(pooled):
    _, index, _ = pooled
    sets = build_cycle_sets(index, model_info("cnn6").inputs)
    for split, data in sets.items():
        assert len(data.datasets) == len(data) and set(data.datasets) <= {"icbhi", "table"}
        expected = [index.recording(cycle_id.rsplit("#", 1)[0]).dataset for cycle_id in data.cycle_ids]
        assert data.datasets == expected
    assert set(sets["test"].datasets) == {"icbhi", "table"}


def test_run_data_refuses_to_replace_one_of_several_datasets(tmp_path, capsys):
    from lungkd.core.cli import main

    path = tmp_path / "pooled.toml"
    path.write_text('[[data]]\npath = "/a"\n[[data]]\npath = "/b"\n' + TEACHERS)
    assert main(["run", str(path), "--data", str(tmp_path), "--workspace", str(tmp_path / "ws")]) == 2
    assert "the recipe trains on 2 datasets; --data replaces one" in capsys.readouterr().err
