#!/usr/bin/env bash
# Tests the bundle that `make package` built (dist/LungKD) as a user would run it, then prints its size on
# disk and its start time to the first window next to `make app`'s (the source tree's .venv).
#
#   packaging/smoke.sh [AUDIO_DIR]      AUDIO_DIR: real recordings with .txt annotations
#                                       (default /work/shared/data/icbhi/audio)
#
# The bundle is copied to a scratch folder and run there with a bare environment (no virtual environment or
# Python on PATH, a fresh HOME) and, where `unshare` may (root), without network and with the source tree and
# the Python installs that built it hidden: what the bundle needs, it must carry.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
AUDIO_DIR=${1:-/work/shared/data/icbhi/audio}
BUNDLE=$ROOT/dist/LungKD
VENV=${VENV:-$ROOT/.venv}

[ -x "$BUNDLE/lungkd-studio" ] || { echo "no bundle at $BUNDLE: run 'make package' first" >&2; exit 1; }
recording=$(find "$AUDIO_DIR" -maxdepth 1 -name '*.wav' | sort | while read -r wav; do
    [ -f "${wav%.wav}.txt" ] && { echo "$wav"; break; }; done)
[ -n "$recording" ] || { echo "no .wav with a .txt annotation in $AUDIO_DIR" >&2; exit 1; }

scratch=$(mktemp -d /tmp/lungkd-smoke.XXXXXX)
echo "scratch folder: $scratch"
mkdir -p "$scratch/home" "$scratch/recordings" "$scratch/empty"
# Hard links: a relocated bundle at no cost in disk (a copy where the scratch folder is on another disk).
cp -al "$BUNDLE" "$scratch/LungKD" 2>/dev/null || cp -a "$BUNDLE" "$scratch/LungKD"
cp "$recording" "${recording%.wav}.txt" "$scratch/recordings/"
cp "$ROOT/packaging/smoke-as-user.sh" "$scratch/"
user_env=(env -i "HOME=$scratch/home" PATH=/usr/bin:/bin LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen)

# Folders to hide from the bundle: the source tree, and the interpreters and site-packages of its venvs.
hidden=("$ROOT")
for python in "$ROOT"/.venv*/bin/python; do
    [ -x "$python" ] || continue
    while read -r folder; do hidden+=("$folder"); done < <("$python" -c \
        'import sys; print(sys.base_prefix); [print(p) for p in sys.path if p.endswith("-packages")]')
done
if unshare --net --mount true 2>/dev/null; then
    mounts=""
    kept=()
    while read -r folder; do  # sorted, so a folder inside one already hidden comes after it and is skipped
        inside=false
        for outer in "${kept[@]}"; do [[ $folder == "$outer"/* ]] && inside=true; done
        if ! $inside && [ -d "$folder" ]; then
            kept+=("$folder")
            mounts+="mount --bind '$scratch/empty' '$folder' && "
        fi
    done < <(printf '%s\n' "${hidden[@]}" | sort -u)
    echo "sandbox: no network; hidden: ${kept[*]}"
    (cd "$scratch" && unshare --net --mount sh -c \
        "${mounts}exec ${user_env[*]} bash smoke-as-user.sh '$scratch/LungKD' '$scratch/recordings/$(basename "$recording")'")
else
    echo "sandbox: unshare is not permitted here, so the network and the source tree stay reachable"
    (cd "$scratch" && "${user_env[@]}" bash smoke-as-user.sh "$scratch/LungKD" "$scratch/recordings/$(basename "$recording")")
fi

echo
echo "== size on disk"
du -sh "$BUNDLE"
internal=$BUNDLE/_internal
cuda=$(find "$internal" -type f \( -path '*/nvidia/*' -o -name 'libcu*' -o -name 'libnv*' -o -name 'libnccl*' \
       -o -name '*_cuda*.so' -o -name 'libcaffe2_nvrtc.so' -o -name 'libtorch_nvshmem.so' \) -printf '%s\n' \
       | awk '{ total += $1 } END { printf "%.0f", total / 1048576 }')
echo "  CUDA libraries (nvidia-* and torch's CUDA parts): $cuda MiB"
for part in torch PySide6 transformers; do
    printf '  %-13s %s\n' "$part/" "$(du -sh "$internal/$part" | cut -f1)"
done

echo
echo "== start to the first window (lungkd-studio --screenshot, a workspace already set up)"
time_start() {  # the seconds one start takes
    local start
    start=$(date +%s.%N)
    "${user_env[@]}" "$@" --screenshot "$scratch/timing.png" >/dev/null 2>&1
    awk -v start="$start" -v end="$(date +%s.%N)" 'BEGIN { printf "%.2f", end - start }'
}
report() {  # cold: the first start after the page cache is dropped (root only); warm: the median of 3 more
    local name=$1 cold="n/a" runs
    shift
    if [ -w /proc/sys/vm/drop_caches ]; then
        sync && echo 3 > /proc/sys/vm/drop_caches
        cold=$(time_start "$@")
    fi
    runs=$(for _ in 1 2 3; do time_start "$@"; echo; done)
    warm=$(sort -n <<< "$runs" | sed -n 2p)
    printf '  %-34s cold %6s s   warm %6s s\n' "$name" "$cold" "$warm"
}
report "bundle" "$scratch/LungKD/lungkd-studio"
bundle_warm=$warm
if [ -x "$VENV/bin/lungkd-studio" ]; then
    report "make app (${VENV#$ROOT/}/bin/lungkd-studio)" "$VENV/bin/lungkd-studio"
    awk -v b="$bundle_warm" -v v="$warm" 'BEGIN { printf "  warm start, bundle / make app: %.2f\n", b / v }'
fi
echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "screenshots: $scratch/first-start.png $scratch/real-recording.png"
