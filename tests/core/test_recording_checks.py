"""The recording checks (core/analysis/recording_checks.py) measure the band levels once for the quality and
the breathing: the same results as each check measuring its own, on generated recordings of every device, with
the cycles of the automatic segmentation and of the annotation."""
from lungkd.core.analysis.breathing import assess_breathing, breathing_of_cycles
from lungkd.core.analysis.quality import assess_quality
from lungkd.core.analysis.recording_checks import RecordingChecks, check_recording
from lungkd.core.analysis.segmentation import segment_cycles
from lungkd.core.data.synth import DEVICES, first_of_each_device, plan_dataset, render_recording

SEED = 3


def test_the_shared_band_levels_give_what_each_check_measures_alone():
    _, plans = plan_dataset(120, SEED)
    chosen = first_of_each_device(plans, 1)
    assert {plan.patient.device.name for _, plan in chosen} == set(DEVICES)
    split = 0
    for index, plan in chosen:
        samples, sr = render_recording(plan, SEED, index), plan.sample_rate
        segmentation = segment_cycles(samples, sr)
        alone = RecordingChecks(assess_quality(samples, sr, list(segmentation.spans)),
                                assess_breathing(samples, sr, segmentation))
        assert check_recording(samples, sr, segmentation.spans, segmentation.method, segmentation) == alone
        edges = plan.breathing.annotated_edges
        annotated = list(zip(edges[:-1], edges[1:]))
        alone = RecordingChecks(assess_quality(samples, sr, annotated),
                                breathing_of_cycles(samples, sr, annotated, 1.0, "annotation", whole_only=False))
        assert check_recording(samples, sr, annotated, "annotation", None) == alone
        split += len(alone.breathing.phases) > 0
    assert split >= len(DEVICES) - 1  # the breath band's levels were read, not passed over
