#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Train the injection design (issue 17) on a leased GPU machine, in one call of the device tool (see
# tools/pack_training.py for what to carry: .gpu/lfw and .gpu/mobilefacenet.onnx), two variants side by side:
#   A = the committed release weights (models/release/facecamo.pt) trained on at batch 64 (the CPU ran batch 16),
#       with the preset's settings (--init-matching copies what matches and starts the rest afresh);
#   B = the same start with loss.teacher_features=1 (the teacher's half-way features of G's face pulled to the
#       source's, as transferable attacks do: does the residual then reach recognisers other than the teacher?).
# fp16 inference weights, the last grids and logs come back in $OUT (8 files at most). INJECT_MIN: minutes of
# training loop per run (add about 1.5 minutes of start-up per run; the two share the GPU: the loop is bound by
# per-step overhead, so each keeps most of its speed).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
INJECT_MIN=${INJECT_MIN:-8}; EXTRA=${EXTRA:-}
{ date; nvidia-smi; python3 -c "import torch, cv2, numpy; print('torch', torch.__version__, 'cv2', cv2.__version__, 'numpy', numpy.__version__)"; nproc; } > "$OUT/env.txt" 2>&1
COMMON="loss.teacher_path=.gpu/mobilefacenet.onnx train.batch_size=64 train.threads=0 train.image_every=100000 train.save_every=100000"
python3 -m training.train --preset inject_cpu --data .gpu/lfw --run-dir /tmp/runs/A --steps 1000000 --minutes "$INJECT_MIN" \
  --init-from models/release/facecamo.pt --init-matching --set $COMMON $EXTRA > "$OUT/train_A.log" 2>&1 &
test -n "${SKIP_B:-}" || python3 -m training.train --preset inject_cpu --data .gpu/lfw --run-dir /tmp/runs/B --steps 1000000 \
  --minutes "$INJECT_MIN" --init-from models/release/facecamo.pt --init-matching --set $COMMON loss.teacher_features=1.0 $EXTRA > "$OUT/train_B.log" 2>&1 &
wait; echo "injection runs done" >> "$OUT/env.txt"
python3 - "$OUT" <<'PY' >> "$OUT/env.txt" 2>&1
import shutil, sys
from pathlib import Path
from training.checkpoint import latest_checkpoint, load_checkpoint
from training.weights import export_inference_weights
out = Path(sys.argv[1])
for name in ("A", "B"):
    run = Path("/tmp/runs") / name
    path = latest_checkpoint(run)
    if path is not None:
        state = load_checkpoint(path)
        export_inference_weights(state, out / f"facecamo_inject_{name}.pt", half=True)
        print("exported", path, "step", state["step"])
    grids = sorted((run / "samples").glob("*"))
    if grids:
        shutil.copy(grids[-1], out / f"grid_{name}{grids[-1].suffix}")
PY
date >> "$OUT/env.txt"
