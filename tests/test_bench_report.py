"""Benchmark report pictures: the control strip shows frames with the requested and tracked angles."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from flap.eval.bench_report import save_control_strip


def test_control_strip_layout_and_labels(tmp_path):
    frames = np.zeros((10, 32, 40, 3), np.uint8)
    frames[:, :, :, 1] = np.arange(10)[:, None, None] * 20  # frame i is green level 20 i
    req = np.zeros((10, 3))
    req[:, 1] = np.linspace(0, 30, 10)
    trk = req.copy()
    trk[3] = np.nan  # no face in frame 3
    path = save_control_strip(tmp_path / "s.png", frames, req, trk, num=4)
    im = np.asarray(Image.open(path))
    assert im.shape == (32 + 26, 4 * 40, 3)
    # frames 0, 3, 6, 9 in order (evenly spaced), pasted unchanged above the band
    assert [int(im[16, 40 * c + 20, 1]) for c in range(4)] == [0, 60, 120, 180]
    band = im[32:]
    r, g, b = (band[..., i].astype(int) for i in range(3))
    yellow, blue = (r > 200) & (g > 200) & (b < 80), (b > 200) & (r < 170)  # (anti-aliased text)
    assert yellow[:13].any() and not yellow[13:].any()  # "ask" line above
    assert blue[13:].any() and not blue[:13].any()  # "got" line below
    with pytest.raises(ValueError):  # never over an input
        save_control_strip(path, frames, req, inputs=[path])
