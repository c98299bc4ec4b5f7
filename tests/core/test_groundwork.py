"""The Scout: a helper process finding recordings' cycles and checking them ahead of the analysis. With it a
folder's analysis is the analysis without it, the cycles found in the helper (this process never finds them
itself, nor decodes a whole recording), a recording that fails there fails with the same words, and a helper killed mid-batch leaves the rest to
this process. Real spawned helpers, the shipped demo model, the session's synthetic recordings."""
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lungkd.core.analysis import groundwork, predict
from lungkd.core.analysis.batch import analyse_folder
from lungkd.core.analysis.groundwork import HELPER_GONE, Scout, find_cycles
from lungkd.core.analysis.limits import load_model_with_limits
from lungkd.core.data import audio
from lungkd.core.data.audio import load_audio

DEMO_MODEL = Path(__file__).resolve().parents[2] / "resources" / "models" / "demo-cnn6"


@pytest.fixture(scope="module")
def model():
    return load_model_with_limits(DEMO_MODEL)


@pytest.fixture
def folder(synthetic_dir, tmp_path) -> Path:
    """Three annotated recordings, two without annotation (segmented), and a file that is no recording."""
    into = tmp_path / "clinic"
    into.mkdir()
    for number, wav in enumerate(sorted(synthetic_dir.glob("*.wav"))[:5]):
        shutil.copy(wav, into)
        if number < 3:
            shutil.copy(wav.with_suffix(".txt"), into)
    (into / "broken.wav").write_bytes(b"RIFF but nothing after it")
    return into


def outcomes(batch) -> tuple[list, list]:
    return ([(r.json, r.csv_rows) for r in batch.results],
            sorted((f.path.name, f.message) for f in batch.failures))


def never_here(*args, **kwargs):
    raise AssertionError("the cycles were found in this process, not in the helper")


def never_decoded_whole(*args, **kwargs):
    raise AssertionError("a whole recording was decoded in this process")


def test_a_folder_analysed_with_a_scout_is_the_analysis_without_one(folder, model, monkeypatch):
    alone = analyse_folder([folder], model, None)
    monkeypatch.setattr(predict, "find_cycles", never_here)  # the helper is a fresh interpreter: it finds them
    # ... and this process never holds a whole recording: it reads each batch's stretch from the file
    monkeypatch.setattr(predict, "load_audio", never_decoded_whole)
    monkeypatch.setattr(audio, "decode_audio", never_decoded_whole)
    with Scout() as scout:
        scouted = analyse_folder([folder], model, None, scout=scout)
    assert outcomes(scouted) == outcomes(alone)
    sources = sorted(r.json["cycle_source"] for r in scouted.results)
    assert sources == ["annotation"] * 3 + ["automatic"] * 2 and len(scouted.failures) == 1


def test_a_recording_that_fails_in_the_helper_fails_there_with_the_same_words(folder, model):
    (folder / next(folder.glob("*.txt")).name).write_bytes(b"\xff\xfe\x00 not text \x81")  # an unreadable annotation
    alone = analyse_folder([folder], model, None)
    with Scout() as scout:
        scouted = analyse_folder([folder], model, None, scout=scout)
    assert outcomes(scouted) == outcomes(alone)
    [failed] = [f for f in scouted.failures if f.path.name != "broken.wav"]
    assert "not a text annotation file" in failed.message and len(scouted.results) == 4


def test_a_killed_helper_leaves_the_rest_to_this_process_and_says_so_once(folder, model, caplog):
    alone = analyse_folder([folder], model, None)
    with Scout() as scout, caplog.at_level(logging.WARNING, logger=groundwork.__name__):
        first = sorted(folder.glob("*.wav"))[0]
        scout.found(first)  # the helper is up and has answered
        os.kill(scout._process.pid, signal.SIGKILL)
        scouted = analyse_folder([folder], model, None, scout=scout)
        assert scout.gone and scout.found(first) is None
    assert outcomes(scouted) == outcomes(alone)
    assert [r.getMessage() for r in caplog.records] == [HELPER_GONE]


def test_answers_are_matched_by_recording_and_those_never_asked_for_are_dropped(folder):
    first, second = sorted(folder.glob("[!b]*.wav"))[:2]

    def found_here(path):
        decoded = load_audio(path)
        return find_cycles(path, decoded.samples, decoded.sample_rate).cycles

    with Scout() as scout:
        scout.order(first)
        scout.order(second)
        assert scout.found(second).cycles == found_here(second)  # the first one's answers came before: passed over
        assert scout.checks(second) is not None
        assert scout.found(first).cycles == found_here(first)  # ordered again when asked for


def test_a_closed_scout_leaves_no_process_behind(folder):
    with Scout() as scout:
        scout.order(sorted(folder.glob("[!b]*.wav"))[0])  # busy when it is closed
        process = scout._process
    assert not process.is_alive() and process.exitcode is not None


def test_the_helper_finds_and_checks_a_44_khz_recording_without_importing_torch(tmp_path):
    """Most stethoscopes record at 44.1 kHz: measuring such a recording (segmentation, quality, breathing)
    resamples it without torch, whose import would cost the helper 1-2 s and 255 MB beside the command's own."""
    import soundfile as sf

    from lungkd.core.data.synth import plan_dataset, render_recording

    _, plans = plan_dataset(40, seed=5)
    index, plan = next((i, p) for i, p in enumerate(plans) if p.sample_rate == 44100)
    path = tmp_path / "clinic-44k.wav"
    sf.write(path, render_recording(plan, 5, index), 44100, subtype="PCM_16")
    code = ("import sys\nfrom pathlib import Path\nfrom lungkd.core.analysis.groundwork import checks_of, find_cycles\n"
            "from lungkd.core.data.audio import load_audio\n"
            f"path = Path({str(path)!r})\ndecoded = load_audio(path)\n"
            "found = find_cycles(path, decoded.samples, decoded.sample_rate)\n"
            "checks = checks_of(decoded.samples, decoded.sample_rate, found)\n"
            "print(decoded.sample_rate, found.source, len(found.cycles), 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rate, source, cycles, torch_imported = result.stdout.split()
    assert (rate, source, torch_imported) == ("44100", "automatic", "False") and int(cycles) > 0


def test_what_the_helper_and_the_command_line_import_before_the_model_holds_no_torch():
    code = ("import sys\nimport lungkd.core.analysis.groundwork, lungkd.core.analysis.batch\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
