"""Folders of recordings: analysed with the results cache (resume skips exactly what was done, a changed
file, annotation or model is analysed again), a bad file listed while the batch goes on, `--glob`, and the
combined export whose every row says where it came from. Real recordings (the session's synthetic ones), the
shipped demo model, real files."""
import csv
import hashlib
import io
import json
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lungkd.core.about import lungkd_version
from lungkd.core.analysis.batch import analyse_folder, expand_recordings
from lungkd.core.analysis.combined_export import (EXPORT_FILES, PROVENANCE_COLUMNS, RAVEN_COLUMNS, combined_csv,
                                                  write_combined_export)
from lungkd.core.analysis.limits import load_model_with_limits
from lungkd.core.analysis.results import ResultsCache
from lungkd.core.cancel import Cancelled, CancelToken
from lungkd.core.data.annotation_io import read_raven_table
from lungkd.core.models.card import update_model_card

DEMO_MODEL = Path(__file__).resolve().parents[2] / "resources" / "models" / "demo-cnn6"


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def folder(synthetic_dir, tmp_path) -> Path:
    """Five of the session's recordings (with their annotations) in two subfolders, and a file that is no
    recording."""
    recordings = sorted(synthetic_dir.glob("*.wav"))[:5]
    for number, wav in enumerate(recordings):
        into = tmp_path / "clinic" / ("visit-1" if number < 3 else "visit-2")
        into.mkdir(parents=True, exist_ok=True)
        shutil.copy(wav, into)
        shutil.copy(wav.with_suffix(".txt"), into)
    (tmp_path / "clinic" / "visit-2" / "broken.wav").write_bytes(b"RIFF but nothing after it")
    return tmp_path / "clinic"


@pytest.fixture(scope="module")
def model():
    return load_model_with_limits(DEMO_MODEL)


def names(batch) -> list[str]:
    return sorted(r.name for r in batch.results)


def test_a_bad_file_is_listed_with_its_reason_and_the_batch_goes_on(folder, model, tmp_path):
    batch = analyse_folder([folder], model, ResultsCache(tmp_path / "results"))
    assert len(batch.results) == 5
    [failure] = batch.failures
    assert failure.path.name == "broken.wav" and "not a readable audio file" in failure.message


def test_resume_after_a_cancel_skips_exactly_what_was_done(folder, model, tmp_path):
    results = ResultsCache(tmp_path / "results")
    cancel, finished = CancelToken(), []

    def on_result(outcome):
        finished.append(outcome.name if hasattr(outcome, "name") else outcome.path.stem)
        if len(finished) == 2:
            cancel.cancel()

    with pytest.raises(Cancelled):
        analyse_folder([folder], model, results, cancel=cancel, on_result=on_result)
    progress = []
    batch = analyse_folder([folder], model, results, on_progress=progress.append)
    reused = sorted(r.name for r in batch.results if r.reused)
    assert reused == sorted(finished) and len(reused) == 2
    assert sorted(r.name for r in batch.results if not r.reused) == sorted(set(names(batch)) - set(finished))
    assert progress[-1].reused == 2 and progress[-1].done == progress[-1].total == 6
    # an analysis read back is the analysis made: the same rows and JSON as a run without the cache
    fresh = {r.name: r for r in analyse_folder([folder], model, None).results}
    for r in batch.results:
        assert r.csv_rows == fresh[r.name].csv_rows and r.json == fresh[r.name].json


def test_a_changed_recording_annotation_or_model_is_analysed_again(folder, model, tmp_path):
    results = ResultsCache(tmp_path / "results")
    first = analyse_folder([folder], model, results)
    assert not any(r.reused for r in first.results)
    changed_audio, changed_annotation = sorted(folder.rglob("*.wav"))[:2]
    samples, rate = sf.read(changed_audio)
    sf.write(changed_audio, samples * 0.5, rate)
    lines = changed_annotation.with_suffix(".txt").read_text().splitlines()
    changed_annotation.with_suffix(".txt").write_text("\n".join(lines[:-1]) + "\n")  # one cycle fewer

    again = {r.name: r for r in analyse_folder([folder], model, results).results}
    assert {n for n, r in again.items() if not r.reused} == {changed_audio.stem, changed_annotation.stem}
    assert again[changed_audio.stem].provenance.file_sha256 == sha256(changed_audio)
    assert len(again[changed_annotation.stem].cycles) == len(lines) - 1

    other = tmp_path / "recalibrated"
    shutil.copytree(DEMO_MODEL, other)
    calibration = load_model_with_limits(DEMO_MODEL).card.calibration
    update_model_card(other, calibration=calibration.model_copy(update={"temperature": 2.0}))
    recalibrated = analyse_folder([folder], load_model_with_limits(other), results)
    assert not any(r.reused for r in recalibrated.results)
    assert {r.provenance.model_card_sha256 for r in recalibrated.results} == {sha256(other / "lungkd.json")}


def test_glob_narrows_the_folders_to_the_recordings_it_matches(folder):
    visit_2, left = expand_recordings([folder], glob="visit-2/*.wav")
    assert sorted(p.parent.name for p in visit_2) == ["visit-2"] * 3 and left == []
    none, [failure] = expand_recordings([folder], glob="*.flac")
    assert none == [] and "matches '*.flac'" in failure.message


def test_the_combined_export_parses_and_every_row_carries_its_provenance(folder, model, tmp_path):
    batch = analyse_folder([folder], model, ResultsCache(tmp_path / "results"))
    paths = write_combined_export(tmp_path / "export", batch)
    assert {p.name for p in paths.values()} == set(EXPORT_FILES.values())
    card_sha = sha256(DEMO_MODEL / "lungkd.json")
    files = {Path(r.provenance.file): r for r in batch.results}

    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    assert len(rows) == sum(len(r.cycles) for r in batch.results) > 0
    for row in rows:
        assert row["file_sha256"] == sha256(Path(row["file"])) and Path(row["file"]).stem == row["recording"]
        assert (row["model"], row["model_card_sha256"], row["lungkd_version"]) == ("demo-cnn6", card_sha,
                                                                                  lungkd_version())
        assert datetime.fromisoformat(row["analysed_at"]).tzinfo is not None
        assert float(row["p_normal"]) + float(row["p_crackle"]) + float(row["p_wheeze"]) + float(row["p_both"]) == \
            pytest.approx(1, abs=1e-3)

    document = json.loads(paths["json"].read_text())
    assert [r["provenance"]["file"] for r in document["recordings"]] == [str(p) for p in files]
    for recording in document["recordings"]:
        assert set(recording["provenance"]) == set(PROVENANCE_COLUMNS)
        assert recording["provenance"]["file_sha256"] == sha256(Path(recording["provenance"]["file"]))
        assert len(recording["cycles"]) == len(files[Path(recording["provenance"]["file"])].cycles)
    assert [f["file"] for f in document["failures"]] == [str(folder / "visit-2" / "broken.wav")]

    table = list(csv.reader(io.StringIO(paths["raven"].read_text()), delimiter="\t"))
    assert tuple(table[0]) == RAVEN_COLUMNS and len(table) - 1 == len(rows)
    column = {name: i for i, name in enumerate(RAVEN_COLUMNS)}
    offset, previous = 0.0, None
    for selection in table[1:]:
        path = Path(selection[column["Begin Path"]])
        if previous is not None and path != previous:
            offset += files[previous].json["duration"]
        previous = path
        begin, within = float(selection[column["Begin Time (s)"]]), float(selection[column["File Offset (s)"]])
        assert begin == pytest.approx(offset + within, abs=1e-5)  # files one after another, as Raven lists them
        assert selection[column["File SHA-256"]] == sha256(path)
        assert selection[column["Model Card SHA-256"]] == card_sha
    spans, problems = read_raven_table(paths["raven"])  # LungKD's own Raven reader takes it too
    assert len(spans) == len(rows) and problems == []


def test_a_cycle_row_names_a_formula_like_file_as_text(model, synthetic_dir, tmp_path):
    odd = tmp_path / "=cmd" / "visit"
    odd.mkdir(parents=True)
    wav = sorted(synthetic_dir.glob("*.wav"))[0]
    shutil.copy(wav, odd)
    batch = analyse_folder([odd], model, None)
    first = list(csv.reader(io.StringIO(combined_csv(batch.results))))[1]
    assert first[0] == str(odd / wav.name)  # a path starts with '/', never read as a formula
    assert not any(cell.startswith("=") for cell in first)


def lungkd(*args):
    return subprocess.run([sys.executable, "-m", "lungkd.core.cli", *map(str, args)], capture_output=True,
                          text=True)


def test_lungkd_predict_exports_a_folder_and_goes_on_after_ctrl_c(folder, tmp_path):
    workspace, export = tmp_path / "ws", tmp_path / "export"
    started = subprocess.Popen([sys.executable, "-m", "lungkd.core.cli", "predict", DEMO_MODEL, folder,
                                "--workspace", workspace, "--export", export], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               # Ctrl-C as in a terminal, also where this run itself was started with it ignored
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    while not list((workspace / "results").rglob("*.json")) and started.poll() is None:
        time.sleep(0.05)  # until the first recording's analysis is kept
    started.send_signal(signal.SIGINT)
    _, stderr = started.communicate(timeout=300)
    kept = len(list((workspace / "results").rglob("*.json")))
    if started.returncode == 130:  # stopped before the end: nothing exported, what was done kept
        assert "run the same command again to go on" in stderr and not export.exists()
    resumed = lungkd("predict", DEMO_MODEL, folder, "--workspace", workspace, "--export", export)
    assert resumed.returncode == 1, resumed.stderr  # 1: a file failed (broken.wav), the others are exported
    assert f"{kept} of 5 recording(s) were analysed before" in resumed.stderr
    assert "broken.wav: not a readable audio file" in resumed.stderr
    assert len(json.loads((export / EXPORT_FILES["json"]).read_text())["recordings"]) == 5

    refused = lungkd("predict", DEMO_MODEL, folder, "--workspace", workspace, "--export", export)
    assert refused.returncode == 2 and "exist already" in refused.stderr
    narrowed = lungkd("predict", DEMO_MODEL, folder, "--workspace", workspace, "--glob", "visit-1/*", "--csv")
    assert narrowed.returncode == 0, narrowed.stderr
    assert "3 of 3 recording(s) were analysed before" in narrowed.stderr
    table = list(csv.DictReader(io.StringIO(narrowed.stdout)))
    assert {row["recording"] for row in table} == {p.stem for p in (folder / "visit-1").glob("*.wav")}
