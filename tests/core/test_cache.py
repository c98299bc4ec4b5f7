"""The content-addressed feature cache and prepare_dataset (order, failures, parallelism, fast path)."""
import shutil
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import soundfile as sf

from lungkd.core import pool as pool_module
from lungkd.core.features import cache as cache_module
from lungkd.core.data.annotations import read_annotation_file
from lungkd.core.storage import file_sha256
from lungkd.core.features.cache import (CacheEntry, FeatureCache, PreparationCancelled, entry_key,
                               prepare_dataset)
from lungkd.core.errors import Problem
from lungkd.core.features.inputs import ClapFeatureSettings, FbankSettings, PrepSettings
from lungkd.core.features.prepare import prepare_recording
from lungkd.core.data.records import Cycle, Recording

PREP = PrepSettings()
SHORT = PrepSettings(clip_seconds=1.0)  # small clips keep the synthetic cases fast


def recording(folder, name, seconds=3.0, sr=8000, spans=((0.2, 1.2), (1.2, 2.9)), seed=0):
    """A wav of noise with cycles at `spans` (crackle on odd cycles)."""
    path = folder / f"{name}.wav"
    sf.write(path, np.random.default_rng(seed).uniform(-0.3, 0.3, int(seconds * sr)), sr, subtype="PCM_16")
    cycles = tuple(Cycle(name, i, a, b, i % 2, 0, i + 1) for i, (a, b) in enumerate(spans))
    return Recording(name, name.split("_")[0], audio_path=path, cycles=cycles)


def recordings_in(audio_dir):
    """The annotated recordings of a folder in ICBHI layout, as the dataset index would give them."""
    recs = []
    for wav in sorted(audio_dir.glob("*.wav"), reverse=True):  # deliberately not in dataset order
        cycles, _ = read_annotation_file(wav.with_suffix(".txt"), wav.stem)
        recs.append(Recording(wav.stem, wav.stem.split("_")[0], audio_path=wav, cycles=tuple(cycles)))
    return recs


# ---------------------------------------------------------------- keys

def test_key_changes_with_audio_bytes_boundaries_and_every_setting(tmp_path):
    rec = recording(tmp_path, "101_1b1_Al_sc_Meditron")
    digest = file_sha256(rec.audio_path)
    base = entry_key(digest, rec.cycles, PREP, FbankSettings())
    moved = (Cycle(rec.name, 0, 0.2, 1.25, 0, 0), rec.cycles[1])
    variants = [
        entry_key(digest, moved, PREP, FbankSettings()),
        entry_key(digest, rec.cycles[:1], PREP, FbankSettings()),
        entry_key(digest, rec.cycles, PrepSettings(pad="zero"), FbankSettings()),
        entry_key(digest, rec.cycles, PrepSettings(fade=False), FbankSettings()),
        entry_key(digest, rec.cycles, PrepSettings(clip_seconds=4.0), FbankSettings()),
        entry_key(digest, rec.cycles, PREP, FbankSettings(normalization="audioset")),
        entry_key(digest, rec.cycles, PREP, FbankSettings(num_mel_bins=64)),
        entry_key(digest, rec.cycles, PREP, None),
        entry_key(digest, rec.cycles, PrepSettings(48000), ClapFeatureSettings()),
        entry_key(digest, rec.cycles, PrepSettings(48000), ClapFeatureSettings(seed=1)),
    ]
    assert len({base, *variants}) == len(variants) + 1
    # Labels are not part of the key: relabelling keeps the cache.
    relabelled = tuple(Cycle(c.recording, c.index, c.start, c.end, 1, 1) for c in rec.cycles)
    assert entry_key(digest, relabelled, PREP, FbankSettings()) == base

    data = bytearray(rec.audio_path.read_bytes())
    data[-1] ^= 1  # one bit of one sample
    rec.audio_path.write_bytes(bytes(data))
    assert file_sha256(rec.audio_path) != digest  # the memo notices the new mtime
    copy = tmp_path / "elsewhere.wav"
    shutil.copyfile(rec.audio_path, copy)
    assert file_sha256(copy) == file_sha256(rec.audio_path)  # content-addressed, not path-addressed


def test_entries_of_the_old_preparation_are_never_served(tmp_path, monkeypatch):
    """Version 3 checks each entry's CRC-32 and scales audio beyond full scale; an entry made by version 2 has
    another key and, found at a current key, is refused for its version."""
    rec = recording(tmp_path, "101_1b1_Al_sc_Meditron")
    digest = file_sha256(rec.audio_path)
    assert cache_module.CACHE_VERSION == 3
    current = entry_key(digest, rec.cycles, PREP, FbankSettings())
    monkeypatch.setattr(cache_module, "CACHE_VERSION", 2)
    old = entry_key(digest, rec.cycles, PREP, FbankSettings())
    store = FeatureCache(tmp_path / "cache")
    entry = CacheEntry(np.zeros((2, 798, 128), np.float32), [])
    assert store.put(old, entry, str(rec.audio_path)) and store.put(current, entry, str(rec.audio_path))
    monkeypatch.setattr(cache_module, "CACHE_VERSION", 3)
    assert old != current
    assert store.get(current, str(rec.audio_path), 2) is None  # written with version 2 metadata: refused


# ---------------------------------------------------------------- the store

def test_get_put_round_trip_keeps_arrays_and_warnings(tmp_path):
    store = FeatureCache(tmp_path / "cache")
    arr = np.random.default_rng(0).standard_normal((3, 798, 128)).astype(np.float32)
    warning = Problem("/data/a.wav", "truncated", "copy it again", None)
    assert store.put("ab" + "c" * 62, CacheEntry(arr, [warning]), "/data/a.wav")
    assert store.path("ab" + "c" * 62) == tmp_path / "cache" / "ab" / ("ab" + "c" * 62 + ".safetensors")
    got = store.get("ab" + "c" * 62, "/moved/a.wav", rows=3)
    np.testing.assert_array_equal(got.load(), arr)
    assert got.warnings == [Problem("/moved/a.wav", "truncated", "copy it again", None)]  # follows the file
    assert store.get("ab" + "c" * 62, "/moved/a.wav", rows=4) is None  # wrong shape: discarded
    assert not store.path("ab" + "c" * 62).exists()


def _flipped(data: bytes) -> bytes:
    """One byte of the array changed, as a failing disk or a bad copy leaves it: the file still parses."""
    changed = bytearray(data)
    changed[len(changed) * 3 // 4] ^= 0x40
    return bytes(changed)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "flipped byte"])
def test_a_partial_or_corrupt_entry_is_discarded_and_recomputed(tmp_path, damage):
    rec = recording(tmp_path, "101_1b1_Al_sc_Meditron")
    store = FeatureCache(tmp_path / "cache")
    first = prepare_dataset([rec], SHORT, None, store, workers=1)
    (entry,) = (tmp_path / "cache").rglob("*.safetensors")
    data = entry.read_bytes()
    entry.write_bytes({"truncate": data[:len(data) // 2], "garbage": b"\x00" * len(data), "empty": b"",
                       "flipped byte": _flipped(data)}[damage])
    again = prepare_dataset([rec], SHORT, None, store, workers=1)
    assert (again.cache_hits, again.computed) == (0, 1)
    np.testing.assert_array_equal(again.inputs, first.inputs)
    assert store.get(entry.stem, str(rec.audio_path), rows=2) is not None  # rewritten whole


def test_left_over_temporary_files_are_never_read(tmp_path):
    store = FeatureCache(tmp_path)
    key = "ee" + "1" * 62
    store.path(key).parent.mkdir(parents=True)
    store.path(key).with_name(f".{key}.safetensors.123.dead.tmp").write_bytes(b"partial")
    assert store.get(key, "a.wav", rows=1) is None


WRITER = textwrap.dedent("""
    import sys, numpy as np
    from lungkd.core.features.cache import CacheEntry, FeatureCache
    root, value = sys.argv[1], float(sys.argv[2])
    store = FeatureCache(root)
    for _ in range(100):
        assert store.put("cd" + "0" * 62, CacheEntry(np.full((4, 200_000), value, np.float32), []), "a.wav")
""")


def test_concurrent_writer_processes_never_expose_a_partial_entry(tmp_path):
    store = FeatureCache(tmp_path)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(v)]) for v in (1.0, 2.0)]
    reads = []
    while any(w.poll() is None for w in writers):
        entry = store.get("cd" + "0" * 62, "a.wav", rows=4)
        if entry is not None:
            values = np.unique(entry.load())
            assert len(values) == 1 and entry.shape == (4, 200_000)  # one writer's whole entry
            reads.append(float(values[0]))
    assert [w.returncode for w in writers] == [0, 0]
    assert reads and set(reads) <= {1.0, 2.0}
    assert store.get("cd" + "0" * 62, "a.wav", rows=4) is not None
    assert not list(tmp_path.rglob("*.tmp"))


# ---------------------------------------------------------------- prepare_dataset

def test_real_recordings_give_80_clips_of_the_shared_readme_classes(icbhi_audio_dir, tmp_path):
    """A fact of the real files: their 80 cycles all become clips, with the class counts of the shared README,
    and none of the ten recordings fails or warns."""
    first = prepare_dataset(recordings_in(icbhi_audio_dir), PREP, FbankSettings(), FeatureCache(tmp_path), workers=2)
    assert first.inputs.shape == (80, 798, 128) and first.inputs.dtype == np.float32
    assert (first.computed, first.cache_hits, first.failed, first.problems) == (10, 0, {}, [])
    assert np.bincount(first.labels).tolist() == [25, 34, 11, 10]


def test_recordings_give_clips_in_dataset_order_and_a_cached_rerun_is_identical(synthetic_dir, tmp_path, monkeypatch):
    """On the session's generated recordings (tests/conftest.py): 14 of four devices at 4 to 44.1 kHz, 70 cycles.
    They are only read; the cache is in tmp_path. Helpers are made to pay at once, so a helper process
    prepares some of them."""
    monkeypatch.setattr(pool_module, "WORKER_START_S", 0.0)
    monkeypatch.setattr(pool_module, "_measured_start_s", None)
    recs = recordings_in(synthetic_dir)
    assert (len(recs), sum(len(r.cycles) for r in recs)) == (14, 70), "the synthetic dataset changed: pick again"
    store = FeatureCache(tmp_path)
    progress = []
    first = prepare_dataset(recs, PREP, FbankSettings(), store, workers=2, progress=lambda *a: progress.append(a))
    assert first.inputs.shape == (70, 798, 128) and first.inputs.dtype == np.float32
    assert (first.computed, first.cache_hits, first.failed, first.problems) == (14, 0, {}, [])
    ordered = sorted(recs, key=lambda r: r.name)
    assert first.cycles == [c for r in ordered for c in r.cycles]
    assert np.bincount(first.labels).tolist() == [36, 18, 9, 7]
    assert progress[0] == (0, 14) and progress[-1] == (14, 14)
    # Worker output equals preparing the first recording here.
    np.testing.assert_allclose(first.inputs[:len(ordered[0].cycles)],
                               FbankSettings().compute(prepare_recording(ordered[0], PREP)[0]), atol=1e-4)

    def no_pool(*args, **kwargs):
        raise AssertionError("a process pool was started although every entry is cached")

    monkeypatch.setattr(pool_module, "spawn_pool", no_pool)
    again = prepare_dataset(recs, PREP, FbankSettings(), store, workers=4)
    assert (again.computed, again.cache_hits) == (0, 14)
    np.testing.assert_array_equal(again.inputs, first.inputs)
    assert again.cycles == first.cycles


def test_a_recording_that_fails_to_decode_is_reported_and_the_rest_proceed(tmp_path):
    good = recording(tmp_path, "102_1b1_Ar_sc_Meditron")
    bad = recording(tmp_path, "101_1b1_Al_sc_Meditron")
    bad.audio_path.write_bytes(b"RIFF this is not a wav file")
    missing = Recording("103_1b1_Al_sc_Meditron", "103", cycles=good.cycles)
    later = recording(tmp_path, "104_1b1_Ar_sc_Meditron", spans=((0.5, 1.5),), seed=1)
    result = prepare_dataset([later, good, bad, missing], SHORT, None, FeatureCache(tmp_path / "c"), workers=1)
    assert result.inputs.shape == (3, 16000)
    assert [c.recording for c in result.cycles] == [good.name] * 2 + [later.name]
    # the failed recordings' rows are gone and the good ones' clips follow each other, in dataset order
    np.testing.assert_array_equal(result.inputs, np.concatenate([prepare_recording(good, SHORT)[0],
                                                                 prepare_recording(later, SHORT)[0]]))
    assert set(result.failed) == {bad.name, missing.name}
    failure = result.failed[bad.name]
    assert failure.path == str(bad.audio_path) and "not a readable audio file" in failure.message
    assert "no audio file" in result.failed[missing.name].message and result.failed[missing.name].path == missing.name
    assert result.problems == [result.failed[bad.name], result.failed[missing.name]]


def test_warnings_survive_the_cache_and_name_the_current_file(tmp_path):
    rec = recording(tmp_path, "101_1b1_Al_sc_Meditron", spans=((0.5, 1.0), (3.5, 4.0)))
    store = FeatureCache(tmp_path / "c")
    first = prepare_dataset([rec], SHORT, None, store, workers=1)
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy2(rec.audio_path, moved / rec.audio_path.name)
    copy = Recording(rec.name, rec.patient, audio_path=moved / rec.audio_path.name, cycles=rec.cycles)
    again = prepare_dataset([copy], SHORT, None, store, workers=1)
    assert again.cache_hits == 1 and len(again.problems) == len(first.problems) == 1
    assert again.problems[0].path == str(copy.audio_path) and again.problems[0].line == 2
    assert not again.inputs[1].any()  # the cycle past the audio is silence, kept in place


def test_without_a_cache_and_inline_gives_the_same_arrays(tmp_path):
    recs = [recording(tmp_path, f"10{i}_1b1_Al_sc_Meditron", seed=i) for i in range(3)]
    cached = prepare_dataset(recs, SHORT, FbankSettings(), FeatureCache(tmp_path / "c"), workers=1)
    plain = prepare_dataset(recs, SHORT, FbankSettings(), None, workers=1)
    np.testing.assert_array_equal(cached.inputs, plain.inputs)
    assert plain.inputs.shape == (6, 98, 128) and (plain.cache_hits, plain.computed) == (0, 3)


def test_an_unwritable_cache_warns_and_preparation_goes_on(tmp_path):
    rec = recording(tmp_path, "101_1b1_Al_sc_Meditron")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    result = prepare_dataset([rec], SHORT, None, FeatureCache(blocker), workers=1)
    assert result.inputs.shape == (2, 16000) and result.failed == {}
    assert [p.path for p in result.problems] == [str(blocker)] and "cache" in result.problems[0].message


def test_cancel_stops_between_recordings_and_keeps_what_is_cached(tmp_path):
    recs = [recording(tmp_path, f"10{i}_1b1_Al_sc_Meditron", seed=i) for i in range(3)]
    store = FeatureCache(tmp_path / "c")
    token = threading.Event()

    def progress(done, total):
        if done == 1:
            token.set()

    with pytest.raises(PreparationCancelled):
        prepare_dataset(recs, SHORT, None, store, workers=1, progress=progress, cancel=token)
    assert len(list((tmp_path / "c").rglob("*.safetensors"))) == 1
    assert prepare_dataset(recs, SHORT, None, store, workers=1).cache_hits == 1


def test_feature_rate_must_match_the_preparation_rate():
    with pytest.raises(ValueError, match="48000 Hz"):
        prepare_dataset([], PrepSettings(16000), ClapFeatureSettings())
