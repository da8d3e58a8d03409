#!/usr/bin/env bash
# The shipped SO100 sim model, end to end on a CPU: record expert demonstrations of the block-in-circle task through
# the ROS graph, convert them, train the VQGAN and the RynnVLA model (with and, for the ablation, without world-model
# samples), continue the with-world-model run at a lower learning rate (`finetune`: the shipped model), and evaluate.
# The shipped model and the ablation table in models/README.md come from these commands.
#
#   bash scripts/so100_sim_model.sh record|convert|vq|train|train_vla_only|finetune|eval|eval_wm|all   [WORK=dir]
#
# WORK (default work/so100_sim) holds the bags, the dataset and the runs; nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-work/so100_sim}
BIN=${VENV:-$PWD/.venv}/bin
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$((RANDOM % 100 + 1))}
export MUJOCO_GL=${MUJOCO_GL:-egl} HF_HUB_OFFLINE=1 OPENBLAS_NUM_THREADS=1

EPISODES=${EPISODES:-101}   # demonstrations (layout seeds 1000...; evaluation uses seeds 0..49, never seen)
STEPS=${STEPS:-6000}        # optimizer steps of each model (the ablation table: STEPS=2000)
FT_STEPS=${FT_STEPS:-5000}  # steps of `finetune` (continues the with_wm model; the shipped model)
THREADS=${THREADS:-1}       # torch threads per training (the two trainings run side by side on 2 cores)
VQ=${VQ:-$WORK/vq}          # tokenizer of the trainings (`vq` writes $WORK/vq; the shipped model reused an earlier one)

record() {
  "$BIN/rynnvla-bringup" record hardware:=sim teleop:=expert episodes:="$EPISODES" seed:=1000 \
    output_dir:="$WORK/bags" record_backend:=rosbags
}

convert() {
  "$BIN/rynnvla-convert" bags "$WORK/bags" -o "$WORK/dataset" --split-episodes --no-videos --image-size 64 --fps 10 \
    --relative-joints shoulder_pan shoulder_lift elbow_flex wrist_flex wrist_roll \
    --report "$WORK/conversion_report.json"
}

vq() {
  "$BIN/rynnvla-train-vq" --root "$WORK/dataset" --output "$WORK/vq" --image-size 64 --downsample 8 --channels 16 \
    --codebook-size 512 --steps 1500 --batch-size 32 --lr 2e-3 --foreground-weight 10
}

train_run() {  # $1: output dir, $2: world-model samples per VLA sample, then extra rynnvla-train options
  OMP_NUM_THREADS=$THREADS "$BIN/rynnvla-train" --config config/train_so100_sim.yaml --data.root "$WORK/dataset" \
    --model.vqgan "$VQ" --data.world_model_ratio "$2" --train.steps "$STEPS" --train.output_dir "$1" "${@:3}"
}
train() { train_run "$WORK/runs/with_wm" 0.5; }
train_vla_only() { train_run "$WORK/runs/vla_only" 0; }
finetune() {  # the shipped model: train's model trained FT_STEPS more steps on a second, lower cosine schedule
  STEPS=$FT_STEPS train_run "$WORK/runs/with_wm_ft" 0.5 --model.init "$WORK/runs/with_wm/final" --optim.lr 4e-4 \
    --optim.min_lr 4e-5
}

eval_sim() {  # $1: run dir
  "$BIN/rynnvla-eval-sim" --checkpoint "$1/final" --episodes 50 --seed 0 --out "$1/eval_sim"
}

eval_wm() {  # $1: run dir (held-out episodes: the run's split.json)
  "$BIN/rynnvla-eval-wm" "$1/final" "$WORK/dataset" --split "$1/final/split.json" --max-steps 16 --stride 4 \
    --device cpu --out "$1/eval_wm.json"
}

case "${1:-all}" in
  record) record ;;
  convert) convert ;;
  vq) vq ;;
  train) train ;;
  train_vla_only) train_vla_only ;;
  finetune) finetune ;;
  eval) for r in with_wm_ft with_wm vla_only; do eval_sim "$WORK/runs/$r"; done ;;
  eval_wm) for r in with_wm_ft with_wm vla_only; do eval_wm "$WORK/runs/$r"; done ;;
  all) record; convert; vq; train & train_vla_only; wait; THREADS=2 finetune
       for r in with_wm_ft with_wm vla_only; do eval_sim "$WORK/runs/$r"; eval_wm "$WORK/runs/$r"; done ;;
  *) echo "unknown step $1" >&2; exit 2 ;;
esac
