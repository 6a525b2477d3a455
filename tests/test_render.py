"""Preview renderer (flap.render): shading, culling, depth order, framing, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flap.render import face_normals, frame_mesh, mesh_framing, rasterize, render_mesh, render_mesh_sequence

# One triangle turned towards the camera in the pixel frame (x right, y down, depth away):
# (v1 - v0) x (v2 - v0) = (0, 10, 0) x (10, 0, 0) = (0, 0, -100)  -> normal (0, 0, -1).
FRONT = np.array([[10.0, 10.0, 5.0], [10.0, 50.0, 5.0], [50.0, 10.0, 5.0]])
TRI = np.array([[0, 1, 2]])


def _square(x0, y0, x1, y1, depth):
    """Two front-facing triangles covering the pixel box [x0, x1] x [y0, y1] at one depth."""
    v = np.array([[x0, y0, depth], [x0, y1, depth], [x1, y0, depth], [x1, y1, depth]], dtype=float)
    return v, np.array([[0, 1, 2], [2, 1, 3]])


def _read_sample_ply(path):
    """Tiny reader for the binary little-endian FLAME sample PLY (5023 vertices, 9976 faces)."""
    with open(path, "rb") as fh:
        header = []
        while (line := fh.readline().strip()) != b"end_header":
            header.append(line)
        assert b"format binary_little_endian 1.0" in header
        verts = np.frombuffer(fh.read(5023 * 12), dtype="<f4").reshape(5023, 3)
        rec = np.frombuffer(fh.read(9976 * 13), dtype=np.dtype([("n", "u1"), ("i", "<i4", (3,))]))
    assert (rec["n"] == 3).all()
    return verts.astype(np.float64), rec["i"].astype(np.int64)


def test_face_normals_hand_computed():
    n = face_normals(FRONT, TRI)
    np.testing.assert_allclose(n, [[0.0, 0.0, -1.0]])


def test_rasterize_covers_pixel_centres_once():
    # Right triangle (0,0), (0,4), (4,0): pixel centres (x, y) with x, y >= 0 and x + y <= 4 -> 15 pixels.
    tri = np.array([[[0.0, 0.0, 1.0], [0.0, 4.0, 1.0], [4.0, 0.0, 1.0]]])
    pix, face = rasterize(tri, (8, 8))
    expected = sorted(y * 8 + x for y in range(5) for x in range(5) if x + y <= 4)
    assert sorted(pix.tolist()) == expected and (face == 0).all()
    # Two triangles sharing the hypotenuse: every pixel of the 5x5 square once, no cracks.
    tri2 = np.concatenate([tri, [[[4.0, 0.0, 1.0], [0.0, 4.0, 1.0], [4.0, 4.0, 1.0]]]])
    pix, face = rasterize(tri2, (8, 8))
    assert sorted(pix.tolist()) == [y * 8 + x for y in range(5) for x in range(5)]
    # Depth is interpolated per pixel: a face tilted through a flat one wins only where it is nearer.
    flat = [[0.0, 0.0, 5.0], [0.0, 40.0, 5.0], [40.0, 0.0, 5.0]]
    tilted = [[0.0, 0.0, 0.0], [0.0, 40.0, 0.0], [40.0, 0.0, 10.0]]  # depth = x / 4
    pix, face = rasterize(np.array([flat, tilted]), (64, 64))
    owner = dict(zip(pix.tolist(), face.tolist()))
    assert owner[2 * 64 + 10] == 1 and owner[2 * 64 + 30] == 0  # x=10: depth 2.5 < 5; x=30: 7.5 > 5


def test_lambert_shading_hand_computed():
    # Light straight from the camera: full colour.
    img = render_mesh(FRONT, TRI, size=(64, 64), color=(200, 100, 50), light_dir=(0, 0, -1), ambient=0.25)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    assert tuple(img[15, 15]) == (200, 100, 50)
    assert tuple(img[60, 60]) == (0, 0, 0)  # background outside the triangle
    # Light at 60 degrees from the normal: ambient + (1 - ambient) * cos 60 = 0.25 + 0.75 * 0.5 = 0.625.
    light = (np.sin(np.pi / 3), 0.0, -np.cos(np.pi / 3))
    img = render_mesh(FRONT, TRI, size=(64, 64), color=(200, 80, 40), light_dir=light, ambient=0.25)
    assert tuple(img[15, 15]) == (125, 50, 25)
    # Light from behind: ambient only.
    img = render_mesh(FRONT, TRI, size=(64, 64), color=(200, 100, 40), light_dir=(0, 0, 1), ambient=0.25)
    assert tuple(img[15, 15]) == (50, 25, 10)


def test_back_faces_culled_unless_asked():
    back = TRI[:, ::-1]  # reversed winding: normal points away from the camera
    img = render_mesh(FRONT, back, size=(64, 64), light_dir=(0, 0, -1))
    assert img.max() == 0
    img = render_mesh(
        FRONT, back, size=(64, 64), color=(90, 90, 90), light_dir=(0, 0, -1), cull_back_faces=False
    )
    assert tuple(img[15, 15]) == (90, 90, 90)  # two-sided lighting


@pytest.mark.parametrize("near_first", [False, True])
def test_depth_order_nearest_face_wins(near_first):
    v_far, f_far = _square(5, 5, 40, 40, depth=10.0)
    v_near, f_near = _square(20, 20, 60, 60, depth=1.0)
    parts = [(v_near, f_near, (0, 255, 0)), (v_far, f_far, (255, 0, 0))]
    if not near_first:
        parts = parts[::-1]
    verts = np.concatenate([parts[0][0], parts[1][0]])
    faces = np.concatenate([parts[0][1], parts[1][1] + 4])
    colors = np.array([parts[0][2]] * 2 + [parts[1][2]] * 2)
    img = render_mesh(verts, faces, size=(64, 64), color=colors, light_dir=(0, 0, -1))
    assert tuple(img[30, 30]) == (0, 255, 0)  # overlap: the near (green) square
    assert tuple(img[10, 10]) == (255, 0, 0)  # far square where not covered
    assert tuple(img[55, 55]) == (0, 255, 0)


def test_draws_over_image_without_modifying_it_and_alpha_blends():
    image = np.full((64, 64, 3), 100, dtype=np.uint8)
    before = image.copy()
    out = render_mesh(FRONT, TRI, image=image, color=(200, 200, 200), light_dir=(0, 0, -1), alpha=0.5)
    np.testing.assert_array_equal(image, before)
    assert tuple(out[15, 15]) == (150, 150, 150)  # 0.5 * 200 + 0.5 * 100
    assert tuple(out[60, 60]) == (100, 100, 100)  # untouched outside the mesh


def test_torch_inputs_accepted():
    img_t = render_mesh(torch.tensor(FRONT), torch.tensor(TRI), size=(64, 64), light_dir=(0, 0, -1))
    img_n = render_mesh(FRONT, TRI, size=(64, 64), light_dir=(0, 0, -1))
    np.testing.assert_array_equal(img_t, img_n)


def test_frame_mesh_hand_computed():
    v = np.array([[-0.1, -0.1, 0.0], [0.1, 0.1, 0.05], [0.0, 0.0, -0.05]])
    px = frame_mesh(v, (100, 200), center=(0, 0, 0), scale=400.0)
    # x: W/2 + s x; y: H/2 - s y (flipped); depth: -s z (larger = farther).
    np.testing.assert_allclose(px, [[60.0, 90.0, 0.0], [140.0, 10.0, -20.0], [100.0, 50.0, 20.0]])
    center, scale = mesh_framing(v, (100, 200), fill=0.8)
    np.testing.assert_allclose(center, [0.0, 0.0, 0.0])
    assert scale == pytest.approx(0.8 * 100 / 0.2)
    np.testing.assert_allclose(
        frame_mesh(v, (100, 200)), frame_mesh(v, (100, 200), center=center, scale=scale)
    )


def test_errors_are_clear():
    with pytest.raises(ValueError, match="vertices_px must be"):
        render_mesh(np.zeros((3, 2)), TRI, size=(8, 8))
    with pytest.raises(ValueError, match="faces index vertices 0..2"):
        render_mesh(FRONT, np.array([[0, 1, 3]]), size=(8, 8))
    with pytest.raises(ValueError, match="either image"):
        render_mesh(FRONT, TRI)
    with pytest.raises(ValueError, match="uint8"):
        render_mesh(FRONT, TRI, image=np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="alpha"):
        render_mesh(FRONT, TRI, size=(8, 8), alpha=2.0)
    with pytest.raises(ValueError, match="NaN"):
        render_mesh(np.full((3, 3), np.nan), TRI, size=(8, 8))
    with pytest.raises(ValueError, match="fill"):
        mesh_framing(FRONT, (8, 8), fill=0.0)


def test_sample_flame_mesh_is_centred_and_shaded(shared_data):
    verts, faces = _read_sample_ply(shared_data / "flame" / "ringnet_FLAME_sample.ply")
    px = frame_mesh(verts, (256, 256), fill=0.8)
    img = render_mesh(px, faces, size=(256, 256))
    mask = img.any(axis=2)
    ys, xs = np.nonzero(mask)
    assert 0.25 < mask.mean() < 0.7
    assert abs(xs.mean() - 128) < 12  # centred horizontally (the head is left-right symmetric)
    assert len(np.unique(img[mask].reshape(-1, 3), axis=0)) > 50  # shaded, not a flat silhouette
    # Upright and fitted: skull near the top rows, neck near the bottom rows.
    assert ys.min() < 40 and ys.max() > 216
    # A sequence of the same mesh rotated gives one frame per pose, same framing.
    seq = render_mesh_sequence(np.stack([verts, verts]), faces, size=(128, 96))
    assert seq.shape == (2, 128, 96, 3)
    np.testing.assert_array_equal(seq[0], seq[1])


def test_sequence_over_images_keeps_background():
    v, f = _square(
        -0.05, -0.05, 0.05, 0.05, depth=0.0
    )  # FLAME-frame square (metres), facing +z after the flip
    v[:, 1] *= -1  # y up in FLAME: flip so the winding faces the viewer once mapped to pixels
    images = np.full((2, 40, 60, 3), 30, dtype=np.uint8)
    out = render_mesh_sequence(
        np.stack([v, v]), f, images=images, scale=200.0, center=(0, 0, 0), light_dir=(0, 0, -1)
    )
    assert out.shape == (2, 40, 60, 3)
    assert tuple(out[0, 20, 30]) == (200, 190, 180)  # mesh (default colour, fully lit) in the middle
    assert tuple(out[0, 2, 2]) == (30, 30, 30)  # image kept around it
    np.testing.assert_array_equal(images, 30)  # inputs untouched
