"""The readers of SPRSound, HF_Lung, label tables and Audacity label tracks (core.data.labelled_folders): each on
a folder the generator wrote in its layout (core.data.synth_layouts), with its label map, the metadata its
names carry and what it leaves out; and each kind of bad file named with its line and fix."""
import json

import numpy as np
import pytest
import soundfile as sf

from lungkd.core.data.dataset import load_dataset
from lungkd.core.data.label_maps import DEFAULT_LABEL_MAPS
from lungkd.core.data.prompts import dataset_prompts
from lungkd.core.data.synth_layouts import write_synthetic_layout
from lungkd.core.labels import CLASS_NAMES

RECORDINGS, SEED = 20, 7
LAYOUTS = ("sprsound", "hf_lung", "table", "audacity")


@pytest.fixture(scope="module", params=LAYOUTS)
def generated(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    return folder, write_synthetic_layout(folder, request.param, RECORDINGS, SEED)


def _wav(path, seconds=15.0, sr=4000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.1 * np.sin(np.arange(int(seconds * sr)) / 7.0).astype(np.float32), sr, subtype="PCM_16")


def _warnings(index, text):
    return [w for w in index.warnings if text in w.message]


# ---------------------------------------------------------------- each reader on its generated layout


def test_each_reader_finds_the_cycles_the_generator_wrote_class_by_class(generated):
    folder, summary = generated
    index = load_dataset(folder)
    stats = index.stats()
    assert stats["format"] == summary.layout
    assert stats["warnings"] == []
    assert stats["cycles"]["all"] == summary.cycles and sum(summary.cycles.values()) > 40
    assert stats["official_split"] == bool(summary.cycles_by_split)
    for split, counts in summary.cycles_by_split.items():
        assert stats["cycles"][split] == counts
    assert stats["cycles_with_audio"]["all"] == sum(summary.cycles.values())


def test_each_source_label_is_counted_with_the_class_its_map_gives(generated):
    folder, summary = generated
    labels = {row["label"]: (row["class"], row["count"]) for row in load_dataset(folder).stats()["labels"]}
    default = DEFAULT_LABEL_MAPS[summary.layout]
    assert labels == {label: (default[label], count) for label, count in summary.source_labels.items()}


def test_what_a_layout_leaves_out_is_counted_with_its_reason(generated):
    folder, summary = generated
    left = {f"{row['what']} {row['why']}": row["amount"] for row in load_dataset(folder).stats()["left_out"]}
    expected = {"sprsound": {"recordings annotated Poor Quality": "recordings annotated Poor Quality"},
                "hf_lung": {"inspirations without their expiration":
                            "inspirations with no expiration right after them"}}.get(summary.layout, {})
    for written, read in expected.items():
        assert left[read] == summary.left_out[written] > 0
    unlabelled = next(amount for what, amount in left.items() if what.startswith("seconds of audio in no cycle"))
    assert unlabelled > 0  # the recordings' first and last part, and in HF_Lung the cycles left unlabelled


def test_hf_lung_unlabelled_cycles_are_not_taken_as_normal(tmp_path):
    summary = write_synthetic_layout(tmp_path, "hf_lung", RECORDINGS, SEED)
    index = load_dataset(tmp_path)
    written = sum(len(r.cycles) for r in index.recordings)
    assert summary.left_out["cycles left unlabelled"] > 0
    assert written == sum(summary.cycles.values())  # the unlabelled ones are in no class, normal included


def test_a_recipe_label_map_changes_the_classes_and_says_what_it_left_out(tmp_path):
    summary = write_synthetic_layout(tmp_path, "sprsound", RECORDINGS, SEED)
    base = load_dataset(tmp_path).stats()
    changed = load_dataset(tmp_path, label_map={"rhonchi": "none", "COARSE CRACKLE": "wheeze"}).stats()
    rhonchi, coarse = summary.source_labels.get("Rhonchi", 0), summary.source_labels["Coarse Crackle"]
    assert coarse > 0
    assert changed["cycles"]["all"]["wheeze"] == base["cycles"]["all"]["wheeze"] - rhonchi + coarse
    assert changed["cycles"]["all"]["crackle"] == base["cycles"]["all"]["crackle"] - coarse
    left = {(row["what"], row["why"]): row["amount"] for row in changed["left_out"]}
    if rhonchi:
        assert left[("events", "labelled 'rhonchi' (label_map: none)")] == rhonchi
    assert {"label": "COARSE CRACKLE", "class": "wheeze", "count": coarse} in changed["labels"]


def test_the_format_is_chosen_by_what_the_folder_holds_and_can_be_named(tmp_path, synthetic_dir):
    assert load_dataset(synthetic_dir, probe_audio_files=False).format == "icbhi"
    write_synthetic_layout(tmp_path, "audacity", 6, SEED)
    assert load_dataset(tmp_path).format == "audacity"
    named = load_dataset(tmp_path, dataset_format="icbhi")  # read as ICBHI-style: every line is wrong there
    assert named.format == "icbhi" and _warnings(named, "expected 4 columns, found 3")


# ---------------------------------------------------------------- metadata and splits


def test_sprsound_names_give_age_sex_chest_location_and_device_to_prompts(tmp_path):
    _wav(tmp_path / "train_wav" / "65058931_3.4_1_p2_1086.wav")
    _wav(tmp_path / "test_wav" / "41225759_7.2_0_p5_4201.wav")
    events = {"record_annotation": "CAS", "event_annotation": [{"start": "500", "end": "2500", "type": "Wheeze"}]}
    for folder, name in (("train_json", "65058931_3.4_1_p2_1086"),
                         ("test_json/inter_test_json", "41225759_7.2_0_p5_4201")):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / f"{name}.json").write_text(json.dumps(events))
    index = load_dataset(tmp_path)
    child = index.recording("65058931_3.4_1_p2_1086")
    assert (child.patient, child.location, child.device, child.split) == ("65058931", "Ll", "Yunting", "train")
    assert index.patients["65058931"].age == 3.4 and index.patients["65058931"].sex == "F"
    prompts = dataset_prompts(index, missing="unknown")
    assert prompts["65058931_3.4_1_p2_1086"] == ("This sound was recorded from the left lateral chest of a female "
                                                 "pediatric patient, using a Yunting stethoscope.")
    # p5-p8 are not described by SPRSound: the location is unknown, the rest still known
    assert prompts["41225759_7.2_0_p5_4201"].startswith("This sound was recorded from an unknown region of a male "
                                                         "pediatric patient")
    assert index.recording("41225759_7.2_0_p5_4201").split == "test"


def test_hf_lung_names_give_device_channel_location_and_a_day_for_the_patient(tmp_path):
    for name in ("steth_20190821_12_00_25", "trunc_2019-08-21-10-35-06-L3_1"):
        _wav(tmp_path / "train" / f"{name}.wav")
        (tmp_path / "train" / f"{name}_label.txt").write_text("I 00:00:01.000 00:00:02.000\nE 00:00:02.000 "
                                                             "00:00:03.500\n")
    index = load_dataset(tmp_path)
    steth, trunc = index.recording("steth_20190821_12_00_25"), index.recording("trunc_2019-08-21-10-35-06-L3_1")
    assert (steth.device, steth.location, trunc.device, trunc.location) == ("Litt3200", None, "HF-Type-1", "Lr")
    assert steth.patient == trunc.patient == "day 20190821"
    prompts = dataset_prompts(index, missing="unknown")  # HF_Lung names no age or sex: the policy words them
    assert prompts[trunc.name] == ("This sound was recorded from the right lateral chest of a patient with unknown "
                                   "age and sex, using a HF-Type-1 stethoscope.")
    assert dataset_prompts(index)[steth.name].endswith("female pediatric patient, using a Litt3200 stethoscope.")


def test_a_table_may_give_patients_and_splits(tmp_path):
    for name in ("a", "b", "c"):
        _wav(tmp_path / "audio" / f"{name}.wav", seconds=6.0)
    (tmp_path / "labels.tsv").write_text("file\tstart\tend\tlabel\tpatient\tsplit\n"
                                         "audio/a.wav\t0.5\t2.0\tcrackle\tP1\ttrain\n"
                                         "audio/a.wav\t2.0\t4.0\tnormal\tP1\ttrain\n"
                                         "b.wav\t1.0\t3.0\tboth\tP1\ttest\n"
                                         "c.wav\t1.0\t3.0\twheeze\tP2\tTEST\n")
    index = load_dataset(tmp_path)
    assert index.format == "table" and index.has_official_split
    assert [(r.name, r.patient, r.split, [c.label for c in r.cycles]) for r in index.recordings] == [
        ("a", "P1", "train", [1, 0]), ("b", "P1", "test", [3]), ("c", "P2", "test", [2])]
    assert [c.line for c in index.recording("a").cycles] == [2, 3]


def test_hf_lung_joins_inspiration_and_expiration_and_marks_every_cycle_an_interval_overlaps(tmp_path):
    _wav(tmp_path / "steth_20190101_08_00_00.wav", seconds=15.0)
    (tmp_path / "steth_20190101_08_00_00_label.txt").write_text(
        "I 00:00:00.500 00:00:01.500\n"
        "E 00:00:01.500 00:00:03.000\n"
        "Wheeze 00:00:02.500 00:00:04.000\n"  # into the next cycle too
        "I 00:00:03.500 00:00:04.500\n"
        "E 00:00:04.600 00:00:06.000\n"
        "D 00:00:05.000 00:00:05.200\n"
        "I 00:00:07.000 00:00:08.000\n"  # no expiration: no cycle
        "E 00:00:10.000 00:00:11.000\n"  # no inspiration before it
        "Stridor 00:00:12.000 00:00:13.000\n")  # in no cycle
    index = load_dataset(tmp_path)
    rec = index.recording("steth_20190101_08_00_00")
    assert [(c.start, c.end, CLASS_NAMES[c.label], c.line) for c in rec.cycles] == [
        (0.5, 3.0, "wheeze", 1), (3.5, 6.0, "both", 4)]
    left = {(what, why): amount for (what, why), amount in index.tally.left_out.items()}
    assert left[("inspirations", "with no expiration right after them")] == 1
    assert left[("expirations", "with no inspiration right before them")] == 1
    assert left[("intervals", "of adventitious sound in no joined cycle")] == 1
    assert left[("seconds", "of audio in no cycle (unlabelled time, not taken as normal)")] == pytest.approx(10.0)


def test_audacity_tracks_skip_frequency_lines_and_keep_labels_with_spaces(tmp_path):
    _wav(tmp_path / "rec.wav", seconds=6.0)
    (tmp_path / "rec.txt").write_text("0.500000\t2.000000\tfine crackles\n\\\t100.0\t2000.0\n"
                                      "2.000000\t4.000000\tnormal\n")
    index = load_dataset(tmp_path, label_map={"fine crackles": "crackle"})
    assert index.format == "audacity" and index.warnings == []
    assert [CLASS_NAMES[c.label] for c in index.recording("rec").cycles] == ["crackle", "normal"]


# ---------------------------------------------------------------- bad files, named


def test_a_broken_sprsound_json_is_named_with_its_line_and_the_others_load(tmp_path):
    for name in ("1_3.0_0_p1_1", "2_3.0_0_p1_2"):
        _wav(tmp_path / "train_wav" / f"{name}.wav")
    (tmp_path / "train_json").mkdir()
    (tmp_path / "train_json" / "1_3.0_0_p1_1.json").write_text('{"record_annotation": "Normal",\n'
                                                               '"event_annotation": [\n{"start": "1"}')
    (tmp_path / "train_json" / "2_3.0_0_p1_2.json").write_text(json.dumps({"event_annotation": [
        {"start": "100", "end": "900", "type": "Normal"}, {"start": "900", "type": "Normal"},
        {"start": "x", "end": "1500", "type": "Normal"}, {"start": "1500", "end": "2500", "type": "Squeak"}]}))
    index = load_dataset(tmp_path)
    broken = _warnings(index, "not valid JSON")[0]
    assert broken.path.endswith("1_3.0_0_p1_1.json") and broken.line == 3 and "download" in broken.fix
    assert [str(w).split(": ", 1)[1] for w in index.warnings if w.path.endswith("2_3.0_0_p1_2.json")] == [
        "event 2 of event_annotation has no end; event skipped. Fix: " + _warnings(index, "has no end")[0].fix,
        "event 3: the start 'x' is not a number of milliseconds; event skipped. Fix: " + _warnings(index, "'x'")[0].fix,
        "event 4: the label 'Squeak' is not in the label map; event skipped. Fix: "
        + _warnings(index, "Squeak")[0].fix]
    assert 'label_map = { "Squeak" = "wheeze" }' in _warnings(index, "Squeak")[0].fix
    assert [(c.start, c.end) for c in index.recording("2_3.0_0_p1_2").cycles] == [(0.1, 0.9)]


def test_bad_hf_lung_lines_are_named_and_skipped(tmp_path):
    _wav(tmp_path / "steth_20190101_08_00_00.wav")
    (tmp_path / "steth_20190101_08_00_00_label.txt").write_text(
        "I 00:00:00.500 00:00:01.500\nE 00:00:01.500\nE 00:00:01.500 00:00:03.000\nX 00:00:02.000 00:00:02.500\n"
        "D 00:00:03 00:00:02\nD 3,5 00:00:04.000\n")
    index = load_dataset(tmp_path)
    bad = [(w.line, w.message) for w in index.warnings]
    assert bad == [(2, "expected 3 columns, found 2; line skipped."),
                   (4, "the label 'X' is not in the label map; line skipped."),
                   (5, "the interval starts at 00:00:03, not before its end at 00:00:02; line skipped."),
                   (6, "'3,5' is not a time (HH:MM:SS.mmm); line skipped.")]
    assert [(c.start, c.end) for c in index.recording("steth_20190101_08_00_00").cycles] == [(0.5, 3.0)]


def test_bad_table_rows_are_named_by_line_and_the_rest_load(tmp_path):
    _wav(tmp_path / "a.wav", seconds=6.0)
    (tmp_path / "labels.csv").write_text("File,Start,End,Label\na.wav,0.5,2.0,crackle\na.wav,2.0,1.0,normal\n"
                                         "a.wav,2.0\na.wav,2.0,4.0,squeak\nmissing.wav,0.5,1.0,normal\n")
    index = load_dataset(tmp_path)
    assert [(w.line, w.message.split(";")[0]) for w in index.warnings if w.line] == [
        (3, "the cycle starts at 2 s, not before its end at 1 s"), (4, "expected 4 columns as in the header, found 2"),
        (5, "the label 'squeak' is not in the label map")]
    assert [c.label for c in index.recording("a").cycles] == [1]
    assert index.recording("missing").audio_path is None and _warnings(index, "have no audio file")


def test_a_table_without_the_columns_is_refused_by_name(tmp_path):
    _wav(tmp_path / "a.wav", seconds=6.0)
    (tmp_path / "labels.csv").write_text("name,onset,offset,class\na.wav,0.5,2.0,crackle\n")
    index = load_dataset(tmp_path, dataset_format="table")
    problem = _warnings(index, "does not name the columns")[0]
    assert problem.path.endswith("labels.csv") and "file,start,end,label" in problem.fix


# ---------------------------------------------------------------- the command line


def test_data_synth_writes_a_layout_and_data_stats_shows_its_map_and_what_was_left_out(tmp_path, capsys):
    from lungkd.core.cli import main

    assert main(["data", "synth", "--out", str(tmp_path / "spr"), "--recordings", "12", "--layout", "sprsound"]) == 0
    assert "(sprsound layout)" in capsys.readouterr().out
    assert main(["data", "stats", str(tmp_path / "spr")]) == 0
    out = capsys.readouterr().out
    assert "format: SPRSound (official split from the folders)" in out and "Normal -> normal" in out
    assert "left out: recordings annotated Poor Quality: 1" in out
    assert main(["data", "stats", str(tmp_path / "spr"), "--map", "Normal=none", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["cycles"]["all"]["normal"] == 0
    assert any(row["why"] == "labelled 'Normal' (label_map: none)" for row in stats["left_out"])
    assert main(["data", "stats", str(tmp_path / "spr"), "--map", "Normal"]) == 2
    assert "expected LABEL=CLASS" in capsys.readouterr().err
