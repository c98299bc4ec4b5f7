"""`lungkd run` on a user's plain folder of ICBHI-named recordings (no split file) with split = "official" in a
hand-written recipe: refused before anything trains, once, for the real reason (no split file, so no recording
is in train or test) with the change that fixes it — not blamed on missing audio, which is there."""
from lungkd.core.cli import EXIT_USAGE, main
from lungkd.core.data.sources import DataSpec, check_trainable, resolve_dataset
from lungkd.core.selection import Selection
from plain_folder import plain_folder

RECIPE = """name = "mine"
[data]
path = "{path}"
split = "{split}"
[teachers]
arch = "cnn6"
size = "tiny"
k = 1
[teachers.train]
epochs = 1
[[students]]
arch = "cnn6"
size = "tiny"
labels = "single"
seeds = [1]
"""


def test_run_on_a_plain_folder_with_the_official_split_names_the_missing_split_file_once(synthetic_dir, tmp_path,
                                                                                        capsys):
    folder = plain_folder(synthetic_dir, tmp_path / "my recordings")
    recipe = tmp_path / "mine.toml"
    recipe.write_text(RECIPE.format(path=folder.as_posix(), split="official"))
    assert main(["run", str(recipe), "--workspace", str(tmp_path / "ws")]) == EXIT_USAGE
    out, err = capsys.readouterr()
    said = out + err
    assert "ICBHI_challenge_train_test.txt" in err and "none of its 14 recordings is in train or test" in err
    assert 'choose split = "patient"' in err
    assert said.count("and the folder has none") == 1  # said once
    assert "audio" not in said  # the audio is there: not the reason
    assert "0 training patients" not in said  # nor a calibration warning about the patients it has not split
    assert not (tmp_path / "ws" / "experiments" / "mine" / "teachers").exists()  # nothing trained


def test_the_fix_it_names_works(synthetic_dir, tmp_path):
    folder = plain_folder(synthetic_dir, tmp_path / "my recordings")
    index = resolve_dataset(DataSpec(path=str(folder), split="patient"), tmp_path / "ws")
    check_trainable(index, Selection.BEST_TEST)  # refuses nothing
    assert {r.split for r in index.recordings} >= {"train", "test"}
