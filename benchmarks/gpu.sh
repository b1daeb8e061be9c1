#!/usr/bin/env bash
# The GPU checks, in one call on a machine with an NVIDIA GPU:  bash benchmarks/gpu.sh
#
#   1. the op tests on CUDA: every check_op call of tests/ops with its inputs on the GPU
#      (SHENDU_TEST_DEVICE=cuda), plus tests/test_cuda.py (GPU against CPU, device errors);
#   2. a ResNet-18 CIFAR training step timed against PyTorch on the same GPU
#      (benchmarks/gpu_resnet18.py), written to benchmarks/results/gpu-resnet18.json.
#
# Needs shendu[cuda] (cupy-cuda13x) and a CUDA build of PyTorch in $PYTHON (default python).
# Without a GPU it stops at once with exit code 2 and says so: its absence is never a pass.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PYTHON" -c "import shendu as sd, sys; sys.exit(0 if sd.cuda.is_available() else 1)"; then
    echo "gpu.sh: NO GPU: CuPy with a CUDA device is not available here; nothing was run." >&2
    exit 2
fi
if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu.sh: PyTorch without CUDA: the ResNet-18 comparison needs a CUDA build." >&2
    exit 2
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

status=0
echo "== 1. op tests on CUDA"
SHENDU_TEST_DEVICE=cuda "$PYTHON" -m pytest -q -p no:cacheprovider tests/ops tests/test_cuda.py \
    || status=1

echo "== 2. ResNet-18 CIFAR training step, shendu against PyTorch"
mkdir -p benchmarks/results
"$PYTHON" benchmarks/gpu_resnet18.py --device cuda --batch 128 --warmup 5 --steps 30 \
    --json benchmarks/results/gpu-resnet18.json || status=1

echo "gpu.sh: exit $status"
exit $status
