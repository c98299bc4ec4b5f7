"""What an analysis says beside its predictions (core/analysis/recording_checks.py through predict.py): the
recording's quality and each cycle's, its breathing rate and I:E ratio, in the analysis, the CSV, the JSON and
`lungkd predict`'s text; the predictions on poor cycles marked as such in each.

The recordings are the session's synthetic ones (ICBHI names, annotations beside them), one with the recorder
overdriven over a known stretch (core/data/synth.py's `with_clipping`), written as a real WAV file."""
import csv
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from lungkd.core.analysis.predict import CSV_COLUMNS, QUALITY_COLUMNS, analyse_recording, to_json, write_csv
from lungkd.core.analysis.quality import GOOD, POOR
from lungkd.core.cli import main
from lungkd.core.data.annotations import read_annotation_file
from lungkd.core.data.synth import with_clipping
from tiny_model import tiny_model, tiny_model_folder

CLIPPED = (4.0, 6.0)  # s: the stretch driven far beyond full scale


@pytest.fixture(scope="module")
def model(synthetic_dir, tmp_path_factory):
    return tiny_model(synthetic_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def clipped(synthetic_dir, tmp_path_factory):
    """An annotated synthetic chest recording with 4-6 s overdriven (its annotation copied beside it)."""
    source = max((p for p in sorted(synthetic_dir.glob("*.wav")) if "_Tc_" not in p.name),
                 key=lambda p: len(p.with_suffix(".txt").read_text()))
    folder = tmp_path_factory.mktemp("clipped")
    samples, sr = sf.read(source, dtype="float32")
    target = folder / source.name
    sf.write(target, with_clipping(samples, sr, *CLIPPED), sr, subtype="PCM_16")
    shutil.copy(source.with_suffix(".txt"), target.with_suffix(".txt"))
    return target


@pytest.fixture(scope="module")
def analysis(model, clipped):
    return analyse_recording(clipped, model)


def touching(cycle, span) -> bool:
    return cycle.start < span[1] and cycle.end > span[0]


def test_the_cycles_over_the_clipped_stretch_are_poor_and_say_why(analysis):
    over = [c for c in analysis.cycles if touching(c, CLIPPED)]
    apart = [c for c in analysis.cycles if not touching(c, CLIPPED)]
    assert over and apart
    most = max(over, key=lambda c: min(c.end, CLIPPED[1]) - max(c.start, CLIPPED[0]))
    assert most.quality == POOR and most.poor  # a cycle that only grazes it clips for a share of its time
    assert all(any("clipped" in reason for reason in c.quality_reasons) for c in over)
    assert not any("clipped" in reason for c in apart for reason in c.quality_reasons)
    assert analysis.quality != GOOD and any("clipped" in reason for reason in analysis.quality_reasons)


def test_an_annotated_recording_breathes_at_the_rate_of_its_annotated_cycles(analysis, clipped):
    annotated, _ = read_annotation_file(clipped.with_suffix(".txt"))
    expected = 60.0 / np.median([c.end - c.start for c in annotated])
    assert analysis.breathing_rate == pytest.approx(expected, abs=0.01)
    assert analysis.breathing_rate_confidence == 1.0  # as sure as the expert who placed the cycles
    assert 0.0 <= analysis.ie_confidence <= 1.0
    if analysis.ie_ratio is None:
        assert analysis.breathing_note  # why there is no ratio
    else:
        assert f"I:E 1:{1 / analysis.ie_ratio:.1f}" in analysis.breathing_words


def test_a_recording_without_annotation_breathes_at_the_segmentation_s_rate(model, clipped, tmp_path):
    alone = tmp_path / clipped.name
    shutil.copy(clipped, alone)
    analysis = analyse_recording(alone, model)
    assert analysis.cycle_source == "automatic"
    period = np.median([c.end - c.start for c in analysis.cycles if c.start > 0 and c.end < analysis.duration - 1e-3])
    assert analysis.breathing_rate == pytest.approx(60.0 / period, rel=0.02)
    assert 0 < analysis.breathing_rate_confidence <= 1.0
    assert len(analysis.cycles) and all(c.quality is not None for c in analysis.cycles)


def test_csv_and_json_carry_the_quality_and_the_breathing(analysis, tmp_path):
    write_csv([analysis], tmp_path / "cycles.csv")
    with open(tmp_path / "cycles.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    # the quality and breathing columns come last but the prompt a prompt-reading model read
    assert tuple(rows[0]) == CSV_COLUMNS and CSV_COLUMNS[-len(QUALITY_COLUMNS) - 1:] == (*QUALITY_COLUMNS, "prompt")
    for row, cycle in zip(rows, analysis.cycles, strict=True):
        assert row["quality"] == cycle.quality
        assert ("clipped" in row["quality_reasons"]) == any("clipped" in r for r in cycle.quality_reasons)
        assert row["recording_quality"] == analysis.quality
        assert float(row["breathing_rate"]) == pytest.approx(analysis.breathing_rate, abs=0.05)
        assert float(row["breathing_rate_confidence"]) == pytest.approx(analysis.breathing_rate_confidence, abs=0.005)
    assert POOR in {row["quality"] for row in rows if touching_row(row)}
    assert POOR not in {row["quality"] for row in rows if not touching_row(row)}

    [parsed] = json.loads(to_json([analysis]))
    assert parsed["quality"] == analysis.quality and parsed["quality_reasons"] == analysis.quality_reasons
    assert parsed["breathing_rate"] == analysis.breathing_rate and parsed["ie_ratio"] == analysis.ie_ratio
    assert [c["quality"] for c in parsed["cycles"]] == [c.quality for c in analysis.cycles]
    assert [c["quality_reasons"] for c in parsed["cycles"]] == [c.quality_reasons for c in analysis.cycles]


def touching_row(row) -> bool:
    return float(row["start"]) < CLIPPED[1] and float(row["end"]) > CLIPPED[0]


def test_lungkd_predict_says_the_quality_and_marks_the_poor_cycles(synthetic_dir, tmp_path_factory, clipped, capsys):
    assert main(["predict", str(tiny_model_folder(synthetic_dir, tmp_path_factory)), str(clipped)]) == 0
    lines = capsys.readouterr().out.splitlines()
    checks = next(i for i, line in enumerate(lines) if line.startswith("  quality "))
    assert checks <= 2 and "breaths/min" in lines[checks]  # under the recording's line (and its phase's)
    cycle_lines = lines[checks + 1:]
    marked = [line for line in cycle_lines if "POOR recording quality" in line]
    assert marked and all("clipped" in line for line in marked)
    starts = [float(line.split("-")[0]) for line in marked]
    assert all(start < CLIPPED[1] for start in starts)
