#!/usr/bin/env bash
# One prepared check for a machine with an NVIDIA GPU (no network there), about 10 minutes on an H200.
# 1. One epoch of a full-size BTS teacher and of full CNN6 (random weights, the paper recipes' batch sizes,
#    mixed precision) on an ICBHI-sized synthetic dataset of 920 recordings: cycles/s, peak GPU memory and
#    the share of step time spent waiting for data (goal < 5 %).
# 2. k = 5 full CNN6 teachers trained together against one after another at batch 128 (goal <= 0.5).
# 3. Training and inference throughput of every architecture.
# 4. The time estimate against the first epoch of full CNN6 on the 920 recordings at the paper's batch of 128.
#
# Run from the repository root. Needs torch, torchaudio, transformers, soundfile, safetensors, pydantic, scipy and
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
python3 -m bench.gpu_epoch --recordings "${RECORDINGS:-920}" --out "${OUT:-/tmp}/gpu_check.json"
python3 -m bench.teachers_together --sizes full --ks 5 --cycles 1024 --batch-size 128 --device cuda
python3 -m bench.train_step --device cuda --steps 5
python3 -m bench.estimate_check --only epoch --recordings "${RECORDINGS:-920}" --batch-size 128
