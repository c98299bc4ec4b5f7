"""Property-based tests (Hypothesis) of what reads user files: the annotation parser, the split and
demographics readers, the recipe loader and the audio decoder. Whatever the input — generated, or a real
file mutated — each ends in a result or a LungKD error, never another exception, within a memory limit the
test sets: the address space the process may still take (RLIMIT_AS), so an allocation past it is a
MemoryError and fails the test instead of the machine."""
import io
import json
import os
import sys
from contextlib import contextmanager

import numpy as np
import pytest
import soundfile as sf
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lungkd.core.data.annotations import read_annotation_file
from lungkd.core.data.audio import decode_audio
from lungkd.core.data.dataset import load_dataset
from lungkd.core.data.metadata import DEMOGRAPHICS_FILE, read_patients, read_split_file
from lungkd.core.errors import LungKDError
from lungkd.core.recipes import ExperimentRecipe, load_experiment

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the memory limit reads /proc/self/status")

MEMORY_HEADROOM = 512 << 20  # what one input may cost beyond what the process already holds
EXAMPLES = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                           HealthCheck.data_too_large])


def _address_space() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))


@contextmanager
def memory_limit(headroom: int = MEMORY_HEADROOM):
    """The process may grow by `headroom` bytes of address space inside the block (any allocation, Python's
    or a C library's); the old limit comes back after it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (_address_space() + headroom, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("generated")


def result_or_lungkd_error(function, *args):
    """What the property asserts: `function` returns, or raises a LungKDError; anything else propagates."""
    with memory_limit():
        try:
            return function(*args)
        except LungKDError as exc:
            assert exc.problem.message and exc.problem.path is not None  # it names the file
            return None


# ---------------------------------------------------------------- text: annotations, split, demographics

NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers().map(str),
                    st.sampled_from(["0", "1", "-0", "1e308", "1e-320", "NA", "nan", "inf", "0x1p3", "1_000", "٣"]))
FIELDS = st.one_of(NUMBERS, st.text(max_size=12), st.sampled_from(["train", "test", "F", "M", "101_1b1_Al_sc_Meditron"]))
SEPARATORS = st.sampled_from(["\t", " ", "  ", "\t\t", "\x0b", "\u3000"])
LINE = st.builds(lambda fields, sep: sep.join(fields), st.lists(FIELDS, max_size=8), SEPARATORS)
ENDINGS = st.sampled_from(["\n", "\r\n", "\r", "\x0c", "\u2028"])
TEXT = st.builds(lambda lines, end, bom: ("\ufeff" if bom else "") + end.join(lines), st.lists(LINE, max_size=40),
                 ENDINGS, st.booleans())
ENCODED = st.one_of(TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=2000),
                    # many lines or many bytes: the sizes that used to be read whole
                    st.builds(lambda line, n: (line + "\n").encode("utf-8", "surrogatepass") * n, LINE,
                              st.integers(1, 300_000)))


@EXAMPLES
@given(content=ENCODED)
def test_any_annotation_file_gives_cycles_or_a_message(folder, content):
    path = folder / "101_1b1_Al_sc_Meditron.txt"
    path.write_bytes(content)
    result = result_or_lungkd_error(read_annotation_file, path)
    if result is not None:
        cycles, problems = result
        assert all(0 <= c.start < c.end < float("inf") and c.label in range(4) for c in cycles)
        assert all(p.path == str(path) for p in problems) and (cycles or problems)


@EXAMPLES
@given(split=ENCODED, demographics=ENCODED)
def test_any_split_or_demographics_file_gives_values_or_a_message(folder, split, demographics):
    (folder / "split.txt").write_bytes(split)
    (folder / DEMOGRAPHICS_FILE).write_bytes(demographics)
    result = result_or_lungkd_error(read_split_file, folder / "split.txt")
    if result is not None:
        assert set(result[0].values()) <= {"train", "test"}
    with memory_limit():  # never raises: a bad file costs its facts, with warnings
        patients, _ = read_patients(folder, {DEMOGRAPHICS_FILE: folder / DEMOGRAPHICS_FILE})
    for patient in patients.values():
        assert patient.age is None or 0 <= patient.age <= 125


# ---------------------------------------------------------------- recipes

KEYS = st.sampled_from(["name", "data", "path", "synthetic", "recordings", "seed", "label_noise", "teachers", "arch",
                        "size", "k", "train", "epochs", "lr", "batch_size", "weight_averaging", "students", "labels",
                        "seeds", "baseline", "ensembles", "curated_k", "second_generation", "student", "device",
                        "selection", "deterministic", "together", "pretrained", "split", "x", "a.b"])
SCALARS = st.one_of(st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                    st.sampled_from(["cnn6", "tiny", "mean_2", "cuda:0", "best_val", "../../x", "", "single"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(KEYS, inner, max_size=5)), max_leaves=25)
VALID = {"name": "generated", "data": {"synthetic": {"recordings": 8}}, "teachers": {"arch": "cnn6", "k": 2}}


def _mutated(document: dict, edits: dict) -> str:
    return tomli_w.dumps({**document, **edits})


RECIPES = st.one_of(
    st.builds(_mutated, st.just(VALID), st.dictionaries(KEYS, VALUES, max_size=4)),  # well-formed TOML
    st.builds(lambda text, cut, junk: text[:cut] + junk + text[cut:],  # valid text with junk spliced in
              st.just(tomli_w.dumps(VALID)), st.integers(0, 120), st.text(max_size=30)),
    st.builds(lambda opener, n: opener * n, st.sampled_from(["[", "{a=", "a.", "[[a]]\n", "'''", "\"", "a={b=["]),
              st.integers(1, 40_000)),  # deep or long: refused before tomllib builds anything big
    st.binary(max_size=500).map(lambda b: b.decode("latin-1")),
)


@EXAMPLES
@given(text=RECIPES)
def test_any_recipe_file_loads_or_names_what_is_wrong(folder, text):
    path = folder / "generated.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    recipe = result_or_lungkd_error(load_experiment, path)
    assert recipe is None or isinstance(recipe, ExperimentRecipe)


# ---------------------------------------------------------------- audio


def _recording(fmt: str, subtype: str, rate: int, frames: int, channels: int) -> bytes:
    t = np.arange(frames) / rate
    data = np.stack([0.3 * np.sin(2 * np.pi * 200 * (c + 1) * t) for c in range(channels)], axis=1)
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


FORMATS = st.sampled_from([("WAV", "PCM_16"), ("WAV", "FLOAT"), ("WAV", "PCM_U8"), ("WAV", "PCM_24"),
                           ("FLAC", "PCM_16"), ("WAV", "DOUBLE")])
RECORDINGS = st.builds(lambda fmt, rate, frames, channels: (_recording(*fmt, rate, frames, channels), fmt[0]),
                       FORMATS, st.sampled_from([4000, 8000, 44100, 44101]), st.integers(1, 12000), st.integers(1, 3))


def _mutate(data: bytes, flips: list[tuple[int, int]], cut: int | None, words: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for position, value in flips:  # bytes anywhere
        out[position % len(out)] = value
    for position, value in words:  # 32-bit header fields (sizes, rates, counts) set to anything
        offset = position % max(1, min(len(out) - 4, 64))
        out[offset:offset + 4] = value.to_bytes(4, "little")
    return bytes(out[:cut] if cut is not None else out)


FILES = st.one_of(
    st.builds(lambda rec, flips, cut, words: (_mutate(rec[0], flips, cut, words), rec[1]), RECORDINGS,
              st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
              st.one_of(st.none(), st.integers(0, 400)),
              st.lists(st.tuples(st.integers(0, 64), st.integers(0, 2**32 - 1)), max_size=3)),
    st.builds(lambda data, fmt: (data, fmt), st.binary(max_size=600), st.sampled_from(["WAV", "FLAC"])),
)


@EXAMPLES
@given(file=FILES)
def test_any_audio_file_decodes_to_usable_samples_or_a_message(folder, file):
    data, fmt = file
    path = folder / f"generated.{fmt.lower()}"
    path.write_bytes(data)
    decoded = result_or_lungkd_error(decode_audio, path)
    if decoded is not None:
        samples = decoded.samples
        assert samples.dtype == np.float32 and samples.ndim == 1 and len(samples) >= 0.25 * decoded.sample_rate
        assert np.isfinite(samples).all() and np.abs(samples).max() <= 1.0
        assert 4000 <= decoded.sample_rate <= 768_000


def test_a_dataset_of_generated_files_loads_with_warnings(folder):
    """The readers above together, as `lungkd data stats` meets them: one folder of bad files indexes."""
    root = folder / "dataset"
    root.mkdir()
    (root / "101_1b1_Al_sc_Meditron.txt").write_bytes(b"\xff\xfe" * 100)
    (root / "101_1b1_Al_sc_Meditron.wav").write_bytes(b"RIFF" + os.urandom(100))
    (root / "ICBHI_challenge_train_test.txt").write_text("101_1b1_Al_sc_Meditron\ttrain\n" * 3)
    index = result_or_lungkd_error(load_dataset, root)
    assert len(index.warnings) >= 3


# ---------------------------------------------------------------- the other dataset formats

JSON_VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
                                     st.sampled_from(["Wheeze", "Poor Quality", "Fine Crackle", "-5", "1e400"])),
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(st.sampled_from(["start", "end", "type",
                                                                                    "event_annotation",
                                                                                    "record_annotation", "x"]),
                                                                   inner, max_size=4)), max_leaves=20)
LABEL_FILES = {"sprsound": "1_3.0_0_p1_1.json", "hf_lung": "steth_20190101_08_00_00_label.txt",
               "table": "labels.csv", "audacity": "rec.txt"}


@EXAMPLES
@given(layout=st.sampled_from(sorted(LABEL_FILES)),
       content=st.one_of(ENCODED, JSON_VALUES.map(lambda v: json.dumps(v).encode()),
                         st.builds(lambda events: json.dumps({"event_annotation": events}).encode(),
                                   st.lists(JSON_VALUES, max_size=6))))
def test_any_sprsound_hf_lung_table_or_audacity_file_gives_cycles_or_named_warnings(folder, layout, content):
    root = folder / f"format-{layout}"
    root.mkdir(exist_ok=True)
    for path in root.iterdir():
        path.unlink()
    audio = {"sprsound": "1_3.0_0_p1_1", "hf_lung": "steth_20190101_08_00_00"}.get(layout, "rec")
    sf.write(root / f"{audio}.wav", np.zeros(8000, dtype=np.float32), 4000)
    (root / LABEL_FILES[layout]).write_bytes(content)
    index = result_or_lungkd_error(lambda: load_dataset(root, dataset_format=layout))
    if index is not None:
        cycles = index.cycles()
        assert all(0 <= c.start < c.end < float("inf") and c.label in range(4) for c in cycles)
        assert all(w.path is not None for w in index.warnings)
