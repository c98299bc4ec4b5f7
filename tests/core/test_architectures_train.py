"""Every architecture's tiny configuration trains one epoch on a handful of synthetic cycles, with the inputs
the registry says it reads; BTS with the prompts of its recordings."""
import pytest
import torch

from lungkd.core.data.dataset import load_dataset
from lungkd.core.features.cache import FeatureCache
from lungkd.core.features.cycle_sets import CycleSet, build_cycle_sets
from lungkd.core.models.registry import ARCHITECTURES, create_model, model_info
from lungkd.core.recipes import TrainConfig
from lungkd.core.training.trainer import Trainer

pytestmark = pytest.mark.slow  # six models trained, the CLAP ones at 48 kHz
HANDFUL = 6


@pytest.fixture(scope="module")
def index(synthetic_dir):
    return load_dataset(synthetic_dir)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return FeatureCache(tmp_path_factory.mktemp("cache"))


def _handful(data: CycleSet) -> CycleSet:
    return CycleSet(data.features[:HANDFUL], data.labels[:HANDFUL],
                    data.prompts[:HANDFUL] if data.prompts is not None else None)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_tiny_architecture_trains_one_epoch(arch, index, cache):
    info = model_info(arch)
    sets = build_cycle_sets(index, info.inputs, cache=cache)
    train, test = _handful(sets["train"]), _handful(sets["test"])
    assert train.features.shape[1:] == info.input_shape
    assert info.input_shape == ((1, 1001, 64) if arch in ("audio_clap", "bts") else (798, 128))
    if arch == "bts":
        first = index.recording(sets["train"].cycle_ids[0].split("#")[0])
        assert train.prompts[0].startswith("This sound was recorded from the ") and first.device in train.prompts[0]
    else:
        assert train.prompts is None
    torch.manual_seed(0)
    model = create_model(arch, size="tiny")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = Trainer(TrainConfig(epochs=1, batch_size=4, lr=1e-3), seed=1).fit(model, train, test)
    assert len(result.history) == 1 and result.history[0].loss > 0
    assert result.scores is not None and result.scores.n == HANDFUL
    changed = [k for k, v in result.model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert "head.weight" in changed
