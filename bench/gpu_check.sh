#!/usr/bin/env bash
# One prepared check for a machine with an NVIDIA GPU (no network there).
# Builds full-size cnn6 and bts with random weights, trains one epoch of each on synthetic data with
# mixed precision, and prints throughput, peak GPU memory and the share of time spent waiting for data.
#
# Run from the repository root. Needs torch, torchaudio, transformers, soundfile, safetensors and
# platformdirs on the GPU machine: where they are missing, carry wheels in .whl (see the device notes)
# and the script installs them into /tmp/site first.
set -euo pipefail
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# The project itself, without installing it: lungkd.core -> core/.
mkdir -p /tmp/lungkd_src/lungkd
ln -sfn "$PWD/core" /tmp/lungkd_src/lungkd/core
export PYTHONPATH=/tmp/lungkd_src${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 bench/gpu_epoch.py --recordings "${RECORDINGS:-96}" --out "${OUT:-/tmp}/gpu_check.json"
python3 bench/train_step.py --device cuda --steps 5
