#!/usr/bin/env bash
# Usage: [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [GRES=gpu:8] [SRUN_ARGS="..."] \
#     bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args]
# A Slurm job of GPUS tasks, GPUS_PER_NODE per node, one per GPU (as mmdet's script). On CPU
# nodes set GRES=none: each task is then a CPU process (gloo), its threads CPUS_PER_TASK.
# Python: $PYTHON, else the repo's .venv, else `python` on the PATH.
set -x
TOOLS=$(dirname "$0")
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
GRES=${GRES:-gpu:${GPUS_PER_NODE}}
SRUN_ARGS=${SRUN_ARGS:-""}
if [ -z "$PYTHON" ]; then
    if [ -x "$TOOLS/../.venv/bin/python" ]; then PYTHON="$TOOLS/../.venv/bin/python"; else PYTHON=python; fi
fi
GRES_ARG=""
if [ "$GRES" != none ]; then GRES_ARG="--gres=$GRES"; fi
# shellcheck disable=SC2086  (GRES_ARG and SRUN_ARGS are lists of options)
srun -p "$PARTITION" --job-name="$JOB_NAME" $GRES_ARG --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 \
    $SRUN_ARGS "$PYTHON" -u "$TOOLS/test.py" "$CONFIG" "$CHECKPOINT" --launcher=slurm "${@:5}"
