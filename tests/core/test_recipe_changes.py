"""What differs between the recipe an experiment was started with and a changed one, in words, and the new name
a changed recipe is offered (core/kd/store.py)."""
from lungkd.core.kd.store import ExperimentStore, new_experiment_name, recipe_differences
from lungkd.core.recipes import SyntheticData, load_experiment, shipped_recipes_folder

LITERALS = ("{", "[", "None", "->", "'")


def _demo():
    return load_experiment(shipped_recipes_folder() / "demo-cpu.toml")


def test_differences_are_phrases_in_words_not_python_literals():
    old = _demo()
    student = old.students[0]
    new = old.replace(data=old.data.replace(path="/data/clinic", synthetic=None, split="official"),
                      students=(student.replace(seeds=(1, 2), train=student.train.replace(lr=3e-4)),),
                      teachers=old.teachers.replace(k=5, together=True))
    said = recipe_differences(old.to_dict(), new.to_dict())
    assert said == ["the data was 240 generated recordings (seed 0), now the folder /data/clinic",
                    "data split was patient, now official",
                    "student 1 seeds was 1, now 1, 2", "student 1 train lr was 0.001, now 0.0003",
                    "teachers k was 3, now 5", "teachers together was not set, now on"]
    assert not any(mark in phrase for phrase in said for mark in LITERALS)
    pooled = old.replace(data=(old.data.replace(name="a"), old.data.replace(name="b", synthetic=SyntheticData(
        recordings=8, seed=2))))
    assert recipe_differences(old.to_dict(), pooled.to_dict()) == [
        "the data was 240 generated recordings (seed 0), now 240 generated recordings (seed 0) + 8 generated "
        "recordings (seed 2)"]
    assert recipe_differences(old.to_dict(), old.to_dict()) == []


def test_a_changed_recipe_is_offered_a_free_name_after_its_data(tmp_path):
    workspace = tmp_path / "ws"
    demo = _demo()
    with ExperimentStore(workspace, demo).open() as store:
        store.bind_data("fingerprint")  # something was trained: the name now belongs to this recipe
    assert ExperimentStore(workspace, demo).changes() == []  # the same recipe continues it
    assert new_experiment_name(workspace, demo) == "demo-cpu"
    clinic = demo.replace(data=demo.data.replace(path="/data/clinic recordings", synthetic=None))
    assert ExperimentStore(workspace, clinic).changes()[0].startswith("the data was 240 generated recordings")
    assert new_experiment_name(workspace, clinic) == "clinic-recordings"
    longer = demo.replace(teachers=demo.teachers.replace(k=5))  # same data, another recipe: the recipe's name, -2
    assert new_experiment_name(workspace, longer) == "demo-cpu-2"
    with ExperimentStore(workspace, longer.replace(name="demo-cpu-2")).open() as store:
        store.bind_data("fingerprint")
    assert new_experiment_name(workspace, longer) == "demo-cpu-2"  # that one is this recipe: it continues
    assert new_experiment_name(workspace, longer.replace(teachers=demo.teachers.replace(k=4))) == "demo-cpu-3"
