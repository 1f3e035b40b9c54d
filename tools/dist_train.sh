#!/usr/bin/env bash
# Usage: bash tools/dist_train.sh CONFIG NUM_PROCS [train.py args]
# Works with GPUs (NCCL) and on CPU machines (gloo), e.g. 2 processes on a 2-core machine.
# Python: $PYTHON, else the repo's .venv, else `python` on the PATH.
TOOLS=$(dirname "$0")
CONFIG=$1
NPROCS=$2
PORT=${PORT:-29500}
if [ -z "$PYTHON" ]; then
    if [ -x "$TOOLS/../.venv/bin/python" ]; then PYTHON="$TOOLS/../.venv/bin/python"; else PYTHON=python; fi
fi
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$PYTHON" -m torch.distributed.run --nproc_per_node="$NPROCS" \
    --master_port="$PORT" "$TOOLS/train.py" "$CONFIG" --launcher pytorch "${@:3}"
