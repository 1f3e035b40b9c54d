#!/usr/bin/env bash
# Usage: bash tools/dist_train.sh CONFIG NUM_PROCS [train.py args]
# NUM_PROCS processes on this machine: GPUs (NCCL), or CPU processes (gloo), e.g. 2 on 2 cores.
# Several machines, as mmdet's script: the same command on each of NNODES machines, with
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=<address of node 0> PORT=29500 bash tools/dist_train.sh ...
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=<address of node 0> PORT=29500 bash tools/dist_train.sh ...
# (NUM_PROCS is then per machine). Python: $PYTHON, else the repo's .venv, else `python`.
TOOLS=$(dirname "$0")
CONFIG=$1
NPROCS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
if [ -z "$PYTHON" ]; then
    if [ -x "$TOOLS/../.venv/bin/python" ]; then PYTHON="$TOOLS/../.venv/bin/python"; else PYTHON=python; fi
fi
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$PYTHON" -m torch.distributed.run --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" --nproc_per_node="$NPROCS" \
    --master_port="$PORT" "$TOOLS/train.py" "$CONFIG" --launcher pytorch "${@:3}"
