"""Convert the authors' released DaNet checkpoint into this project's checkpoint format.

    python -m stages.import_reference danet_model_h36m_itw.pt --out checkpoints/reference/model.pt
        [--body-model SMPL_FOLDER] [--drop PREFIX ...]

The file is read with torch.load(weights_only=True) (tensors only, never code); its weights go through the
key renames and tensor reshapes of model.reference_import into the `paper` preset, which loads them strictly.
`stages.evaluate --checkpoint OUT` and `stages.predict --checkpoint OUT` then run it. The authors' model
regresses SMPL parameters: record real SMPL with --body-model (or pass it to evaluate / predict). Keys the
converter does not know are an error listing them; --drop PREFIX discards more of them by name, on purpose.
Exit 0: written; 1: the checkpoint does not fit; 2: a usage or file error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from model.reference_import import ReferenceKeyError, import_checkpoint
from model.training.checkpoint import save_checkpoint
from stages.cli import stage_parser


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("import_reference", __doc__)
    parser.add_argument("checkpoint", type=Path, help="the authors' .pt file (e.g. danet_model_h36m_itw.pt)")
    parser.add_argument("--out", type=Path, required=True, help="our checkpoint to write")
    parser.add_argument("--body-model", default="anny-smpl24", help="body model recorded in the checkpoint")
    parser.add_argument("--drop", nargs="*", default=[], help="more key prefixes of theirs to discard")
    args = parser.parse_args(argv)
    try:
        payload = import_checkpoint(args.checkpoint, body_model=args.body_model, extra_drop=args.drop)
    except ReferenceKeyError as err:
        print(f"import_reference: {err}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as err:
        print(f"import_reference: {err}", file=sys.stderr)
        return 2
    save_checkpoint(args.out, payload)
    tensors = len(payload["model"])
    print(json.dumps({"out": str(args.out), "tensors": tensors, "bytes": args.out.stat().st_size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
