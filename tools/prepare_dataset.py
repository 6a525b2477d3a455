"""Dataset preparation tool: ``python tools/prepare_dataset.py RAW_DIR OUT_DIR [--size 512 ...]``.

Same as ``python -m flap.data.prepare`` (see :mod:`flap.data.prepare` for the outputs and options).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flap.data.prepare import main  # noqa: E402

if __name__ == "__main__":
    main(sys.argv[1:])
