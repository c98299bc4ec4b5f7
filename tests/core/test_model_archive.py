"""One file between machines (core/models/archive.py): a model exported as a .lungkd and imported elsewhere is
the same model, and import refuses every archive that is not exactly a LungKD model folder, naming what is
wrong and unpacking nothing."""
import hashlib
import json
import shutil
import stat
import zipfile

import numpy as np
import pytest

from lungkd.core.analysis.limits import load_model_with_limits
from lungkd.core.analysis.predict import analyse_recording
from lungkd.core.cli import main
from lungkd.core.models.archive import (MAX_MEMBERS, RefusedArchiveError, export_archive, import_archive,
                                        read_archive_card)
from lungkd.core.models.card import CARD_FILE, DamagedModelError, read_model_card
from lungkd.core.models.inventory import shipped_models_folder

DEMO = shipped_models_folder() / "demo-cnn6"


@pytest.fixture
def exported(tmp_path):
    return export_archive(DEMO, tmp_path / "demo.lungkd")


def test_a_model_exported_and_imported_is_the_same_model(exported, tmp_path, synthetic_dir):
    into = tmp_path / "workspace" / "models"
    imported = import_archive(exported, into)
    assert imported.folder == into / "demo" and not imported.already_there
    original = read_model_card(DEMO)
    card = read_model_card(imported.folder)
    assert card == imported.card == original.replace(file_sizes={n: (DEMO / n).stat().st_size
                                                                 for n in original.checksums})
    for name in original.checksums:
        assert (imported.folder / name).read_bytes() == (DEMO / name).read_bytes()
    assert sorted(p.name for p in imported.folder.iterdir()) == sorted([CARD_FILE, *original.checksums])
    recording = next(synthetic_dir.glob("*.wav"))
    before = analyse_recording(recording, load_model_with_limits(DEMO))
    after = analyse_recording(recording, load_model_with_limits(imported.folder))
    np.testing.assert_array_equal([c.probabilities for c in before.cycles], [c.probabilities for c in after.cycles])
    assert after.calibrated and after.distance_limit == before.distance_limit  # the limits travelled in the card


def test_importing_again_finds_the_model_there_and_another_model_gets_a_new_name(exported, tmp_path):
    into = tmp_path / "models"
    first = import_archive(exported, into)
    again = import_archive(exported, into)
    assert again.folder == first.folder and again.already_there
    other = tmp_path / "other" / "demo"
    shutil.copytree(DEMO, other)
    card = json.loads((other / CARD_FILE).read_text())
    card["description"] = "another model"
    (other / CARD_FILE).write_text(json.dumps(card))
    second = import_archive(export_archive(other, tmp_path / "other" / "demo.lungkd"), into)
    assert second.folder == into / "demo-2" and not second.already_there


def test_a_damaged_model_folder_is_not_exported(tmp_path):
    folder = tmp_path / "demo"
    shutil.copytree(DEMO, folder)
    weights = bytearray((folder / "model.safetensors").read_bytes())
    weights[-1] ^= 1
    (folder / "model.safetensors").write_bytes(bytes(weights))
    with pytest.raises(DamagedModelError, match="sha256 differs"):
        export_archive(folder, tmp_path / "demo.lungkd")
    assert not (tmp_path / "demo.lungkd").exists()


# ---------------------------------------------------------------- every refused archive


def _members(archive) -> dict[str, bytes]:
    with zipfile.ZipFile(archive) as z:
        return {name: z.read(name) for name in z.namelist()}


def _card(members) -> dict:
    return json.loads(members[CARD_FILE])


def _write(path, entries, card=None):
    """A zip of (name or ZipInfo, bytes) entries; `card` (a dict) replaces the lungkd.json entry."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            z.writestr(name, json.dumps(card) if card is not None and name == CARD_FILE else data)
    return path


def _listed(card, name, data):
    """The card listing one more file, with its true sha256 and size."""
    card["checksums"][name] = hashlib.sha256(data).hexdigest()
    card["file_sizes"][name] = len(data)
    return card


def _symlink(name):
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def pickle_listed(m, path):
    data = b"\x80\x04cos\nsystem\n."  # a pickle that would run a command
    return _write(path, [*m.items(), ("pytorch_model.bin", data)], _listed(_card(m), "pytorch_model.bin", data))


def unknown_member(m, path):
    return _write(path, [*m.items(), ("notes.json", b"{}")])


def absolute_name(m, path):
    return _write(path, [*m.items(), ("/etc/cron.d/job.json", b"{}")])


def climbing_name(m, path):
    return _write(path, [*m.items(), ("../../.bashrc.txt", b"echo")])


def name_in_a_folder(m, path):
    return _write(path, [(name if name == CARD_FILE else f"weights/{name}", data) for name, data in m.items()])


def symbolic_link(m, path):
    kept = [(n, d) for n, d in m.items() if n != "config.json"]
    return _write(path, [*kept, (_symlink("config.json"), b"/etc/passwd")])


def encrypted_member(m, path):
    """zipfile writes no encryption: the flag is set in config.json's central directory entry by hand."""
    raw = bytearray(_write(path, list(m.items())).read_bytes())
    entry = next(i for i in range(len(raw)) if raw[i:i + 4] == b"PK\x01\x02" and raw[i + 46:i + 57] == b"config.json")
    raw[entry + 8] |= 0x1
    path.write_bytes(bytes(raw))
    return path


def other_file_kind(m, path):
    return _write(path, [*m.items(), ("run.sh", b"rm -rf ~")])


def size_not_the_cards(m, path):
    card = _card(m)
    card["file_sizes"]["config.json"] -= 1
    return _write(path, list(m.items()), card)


def bytes_not_the_cards(m, path):
    weights = bytearray(m["model.safetensors"])
    weights[-1] ^= 1
    return _write(path, [(n, bytes(weights) if n == "model.safetensors" else d) for n, d in m.items()])


def card_not_valid(m, path):
    card = _card(m)
    card["calibration"]["temperature"] = -0.7
    return _write(path, list(m.items()), card)


def card_not_json(m, path):
    return _write(path, [(n, b"{'architecture': " if n == CARD_FILE else d) for n, d in m.items()])


def unknown_architecture(m, path):
    card = _card(m)
    card["architecture"] = "gpt5"
    return _write(path, list(m.items()), card)


def no_card(m, path):
    return _write(path, [(n, d) for n, d in m.items() if n != CARD_FILE])


def listed_file_missing(m, path):
    return _write(path, [(n, d) for n, d in m.items() if n != "head.safetensors"])


def member_twice(m, path):
    with pytest.warns(UserWarning, match="Duplicate name"):
        return _write(path, [*m.items(), ("config.json", m["config.json"])])


def zip_bomb(m, path):
    data = bytes(64 << 20)  # 64 MB of zeros deflate to 64 kB
    return _write(path, [*m.items(), ("tokenizer.json", data)], _listed(_card(m), "tokenizer.json", data))


def too_many_members(m, path):
    return _write(path, [*m.items(), *((f"part{i}.json", b"{}") for i in range(MAX_MEMBERS))])


def not_a_zip(m, path):
    path.write_bytes(b"PK\x03\x04 this is not a zip file")
    return path


REFUSED = [
    (pickle_listed, "the member 'pytorch_model.bin' is a pickle (.bin, .pt, .pth, .pkl, .pickle: loading one can "
                    "run any code)"),
    (unknown_member, "the member 'notes.json' is not one of the files its card lists (config.json, head.safetensors, "
                     "model.safetensors)"),
    (absolute_name, "the member '/etc/cron.d/job.json' is an absolute path"),
    (climbing_name, "the member '../../.bashrc.txt' climbs out of the folder ('..')"),
    (name_in_a_folder, "the member 'weights/config.json' lies in a folder"),
    (symbolic_link, "the member 'config.json' is a symbolic link"),
    (encrypted_member, "the member 'config.json' is encrypted"),
    (other_file_kind, "the member 'run.sh' is not a file a LungKD model holds"),
    (size_not_the_cards, "'config.json' is 75 bytes where its card says 74"),
    (bytes_not_the_cards, "the bytes of 'model.safetensors' are not the ones its card lists (their sha256 differs)"),
    (card_not_valid, "its model card is refused: the model card is not valid (calibration.temperature: Input should "
                     "be greater than or equal to 0.05)"),
    (card_not_json, "its model card is refused: the model card is not JSON"),
    (unknown_architecture, "its card names architecture 'gpt5', which this LungKD does not know"),
    (no_card, "it holds no lungkd.json: it is not a LungKD model"),
    (listed_file_missing, "the file 'head.safetensors' its card lists is not in the archive"),
    (member_twice, "the member 'config.json' is there twice"),
    (zip_bomb, "the member 'tokenizer.json' expands 1,0"),
    (too_many_members, f"it holds {MAX_MEMBERS + 4} members; a LungKD model folder holds at most {MAX_MEMBERS}"),
    (not_a_zip, "not a .lungkd archive (not a zip file"),
]


@pytest.mark.parametrize("make, words", REFUSED, ids=[make.__name__ for make, _ in REFUSED])
def test_import_refuses_an_archive_that_is_not_exactly_a_model_naming_what_is_wrong(exported, tmp_path, make, words):
    bad = make(_members(exported), tmp_path / "bad.lungkd")
    into = tmp_path / "models"
    with pytest.raises(RefusedArchiveError) as caught:
        import_archive(bad, into)
    problem = caught.value.problem
    assert words in problem.message and problem.path == str(bad) and "never unpack a refused archive" in problem.fix
    assert not into.exists() or list(into.iterdir()) == []  # nothing unpacked, not even a hidden folder


def test_the_card_is_read_before_import_only_from_an_archive_whose_members_are_right(exported, tmp_path):
    assert read_archive_card(exported).checksums == read_model_card(DEMO).checksums
    with pytest.raises(RefusedArchiveError, match="is a pickle"):
        read_archive_card(pickle_listed(_members(exported), tmp_path / "bad.lungkd"))


# ---------------------------------------------------------------- the command line


def test_lungkd_models_export_and_import(tmp_path, capsys):
    archive = tmp_path / "demo.lungkd"
    assert main(["models", "export", str(DEMO), str(archive)]) == 0
    assert f"wrote {archive}" in capsys.readouterr().out
    assert main(["models", "export", str(DEMO), str(archive)]) == 2  # never replaced without --force
    assert "exists already" in capsys.readouterr().err
    assert main(["models", "import", str(archive), "--workspace", str(tmp_path / "ws")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Architecture\n  cnn6 (tiny size), 4 classes: normal, crackle, wheeze, both\n")
    for section in ("How it was made", "Training data", "Scores\n  Sp 100.00, Se 77.92, Score 88.96 on the test "
                    "split of synthetic-360-seed0-noise0 (545 cycles)", "Calibration and limits\n  temperature 0.749",
                    "Versions\n  torch 2.11.0"):
        assert section in out
    assert out.rstrip().endswith(f"demo.lungkd checked and imported to {tmp_path / 'ws' / 'models' / 'demo'}")
    bad = unknown_member(_members(archive), tmp_path / "bad.lungkd")
    assert main(["models", "import", str(bad), "--into", str(tmp_path / "elsewhere")]) == 2
    assert "the member 'notes.json' is not one of the files its card lists" in capsys.readouterr().err
