# SPDX-License-Identifier: Apache-2.0
"""Turn a training checkpoint into the release weights that ship in the repository (inference parts only: E_I, E_A,
G and the resolved config; fp16 storage to keep the clone small; no classifier, discriminator or optimiser state).

    python -m training.release --ckpt RUN/checkpoints/step_XXXXXXXX.pt [--out models/release/facecamo.pt]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from training.checkpoint import load_checkpoint
from training.weights import RELEASE_WEIGHTS, export_inference_weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=RELEASE_WEIGHTS)
    parser.add_argument("--float32", action="store_true", help="store float32 instead of float16")
    parser.add_argument("--note", default="", help="free text stored with the weights (data, hardware, time)")
    args = parser.parse_args(argv)
    checkpoint = load_checkpoint(args.ckpt)
    path = export_inference_weights(checkpoint, args.out, half=not args.float32,
                                    extra={"source_checkpoint": args.ckpt.name, "note": args.note})
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) from step {checkpoint['step']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
