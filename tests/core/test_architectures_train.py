"""Every architecture's tiny configuration trains one epoch on a handful of real cycles; BTS with real prompts."""
import pytest
import torch

from lungkd.core.features.cache import FeatureCache
from lungkd.core.data.dataset import load_dataset
from lungkd.core.features.cycle_sets import build_cycle_sets
from lungkd.core.models.registry import create_model
from lungkd.core.training.trainer import CycleSet, TrainConfig, Trainer

HANDFUL = 6
RECORDINGS = ("105_1b1_Tc_sc_Meditron", "107_2b3_Pr_mc_AKGC417L")


@pytest.fixture(scope="module")
def two_recordings(icbhi_audio_dir):
    index = load_dataset(icbhi_audio_dir.parent)
    index.recordings = [index.recording(name) for name in RECORDINGS]
    index.apply_split({RECORDINGS[0]: "train", RECORDINGS[1]: "test"})
    return index


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return FeatureCache(tmp_path_factory.mktemp("cache"))


def _handful(data: CycleSet) -> CycleSet:
    return CycleSet(data.features[:HANDFUL], data.labels[:HANDFUL],
                    data.prompts[:HANDFUL] if data.prompts is not None else None)


@pytest.mark.parametrize("arch", ["cnn6", "resnet18", "efficientnet_b0", "ast", "audio_clap", "bts"])
def test_tiny_architecture_trains_one_epoch(arch, two_recordings, cache):
    sets = build_cycle_sets(two_recordings, arch, cache=cache)
    train, test = _handful(sets["train"]), _handful(sets["test"])
    if arch in ("audio_clap", "bts"):
        assert train.features.shape[1:] == (1, 1001, 64)
    else:
        assert train.features.shape[1:] == (798, 128)
    if arch == "bts":
        assert train.prompts == ["This sound was recorded from the trachea of a female pediatric patient, "
                                 "using a Meditron stethoscope."] * HANDFUL
    torch.manual_seed(0)
    model = create_model(arch, size="tiny")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = Trainer(TrainConfig(epochs=1, batch_size=4, lr=1e-3, seed=1)).fit(model, train, test)
    assert len(result.history) == 1 and result.history[0].loss > 0
    assert result.scores is not None and result.scores.n == HANDFUL
    changed = [k for k, v in result.model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert "head.weight" in changed
