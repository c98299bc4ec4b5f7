"""What a model consumes, apart from how it is built: kept out of core.features.cycle_sets so that the registry
and the model card (and the listing commands through them) do not import the dataset and feature-cache code."""
from __future__ import annotations

from dataclasses import dataclass

from lungkd.core.features.prepare import PrepSettings
from lungkd.core.features.spectral import ClapFeatureSettings, FbankSettings


@dataclass(frozen=True)
class InputSpec:
    """What a model consumes: clips prepared at a rate, the features computed from them, and whether it
    also reads each cycle's BTS prompt."""

    prep: PrepSettings
    features: FbankSettings | ClapFeatureSettings
    prompts: bool = False

    @property
    def kind(self) -> str:
        return "clap" if isinstance(self.features, ClapFeatureSettings) else "fbank"

    @property
    def shape(self) -> tuple[int, ...]:
        """One cycle's input, without the batch axis."""
        return self.features.output_shape(self.prep.clip_len)
