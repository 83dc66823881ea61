#!/bin/bash
# Train on a leased GPU machine (see tools/pack_training.py for what to carry, and models/release/MODEL_CARD.md for
# what happened the first time): (1) training speed of the paper-design cpu preset at batch 128, (2) the donor design,
# two variants side by side, (3) fp16 inference weights and the last Figure-3 grids back in $OUT (8 files at most).
# Time budgets: SPEED_MIN, DONOR_MIN (minutes of training loop each; add about 1.5 minutes of start-up per run).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
SPEED_MIN=${SPEED_MIN:-0.75}; DONOR_MIN=${DONOR_MIN:-6.5}; EXTRA=${EXTRA:-}
{ date; nvidia-smi; python3 -c "import torch, cv2, numpy; print('torch', torch.__version__, 'cv2', cv2.__version__, 'numpy', numpy.__version__)"; nproc; } > "$OUT/env.txt" 2>&1
TEACHER=loss.teacher_path=.gpu/mobilefacenet.onnx
test -n "${SKIP_SPEED:-}" || python3 -m training.train --preset cpu --data .gpu/lfw --run-dir /tmp/runs/cpu128 --steps 100000 --minutes "$SPEED_MIN" \
  --set train.batch_size=128 $TEACHER train.threads=0 train.log_every=20 train.image_every=100000 train.save_every=100000 \
  > "$OUT/speed_cpu128.log" 2>&1; echo "cpu128 exit $?" >> "$OUT/env.txt"
# Two variants share the GPU (the loop is bound by per-step overhead, so each keeps most of its speed):
# A = the donor preset (E_I warmed up on the identity distillation first); B = the same without the distillation.
python3 -m training.train --preset donor --data .gpu/lfw --run-dir /tmp/runs/donor --steps 100000 --minutes "$DONOR_MIN" \
  --set $TEACHER $EXTRA > "$OUT/train_donor.log" 2>&1 &
test -n "${SKIP_B:-}" || python3 -m training.train --preset donor --data .gpu/lfw --run-dir /tmp/runs/donorB --steps 100000 --minutes "$DONOR_MIN" \
  --set $TEACHER train.identity_warmup_steps=0 loss.identity_distill=0 $EXTRA > "$OUT/train_donorB.log" 2>&1 &
wait; echo "donor runs done" >> "$OUT/env.txt"
python3 - "$OUT" <<'PY' >> "$OUT/env.txt" 2>&1
import shutil, sys
from pathlib import Path
from training.checkpoint import latest_checkpoint, load_checkpoint
from training.weights import export_inference_weights
out = Path(sys.argv[1])
for name in ("donor", "donorB"):
    run = Path("/tmp/runs") / name
    path = latest_checkpoint(run)
    if path is not None:
        state = load_checkpoint(path)
        export_inference_weights(state, out / f"facecamo_{name}.pt", half=True)
        print("exported", path, "step", state["step"])
    grids = sorted((run / "samples").glob("*.png"))
    if grids:
        shutil.copy(grids[-1], out / f"grid_{name}.png")
PY
date >> "$OUT/env.txt"
