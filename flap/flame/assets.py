"""Reading FLAME assets: the FLAME folder, model arrays, landmark embeddings and the sample mesh.

Which model file to load (real FLAME or the proxy) is decided by
:func:`flap.flame.model.find_flame_model`, above both this module and :mod:`flap.flame.proxy`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from flap.errors import InputError
from flap.flame.safe_pickle import safe_load_npy, safe_load_pickle

__all__ = [
    "PACKAGE_DATA",
    "flame_dir",
    "read_ply",
    "load_flame_arrays",
    "load_landmark_embeddings",
    "REQUIRED_KEYS",
]

#: MIT-licensed FLAME-topology helpers shipped with the package (RingNet, see RingNet_LICENSE.txt).
PACKAGE_DATA = Path(__file__).resolve().parent / "data"
SAMPLE_MESH = PACKAGE_DATA / "ringnet_FLAME_sample.ply"
STATIC_EMBEDDING = PACKAGE_DATA / "ringnet_flame_static_embedding.pkl"
DYNAMIC_EMBEDDING = PACKAGE_DATA / "ringnet_flame_dynamic_embedding.npy"

#: Keys every FLAME model file must hold, with the trailing shape each must have (None = any).
REQUIRED_KEYS = {
    "v_template": (None, 3),
    "f": (None, 3),
    "shapedirs": (None, 3, None),
    "posedirs": (None, 3, None),
    "J_regressor": (None, None),
    "weights": (None, None),
    "kintree_table": (2, None),
}


def flame_dir() -> Path:
    """The FLAME asset folder: ``$FLAP_FLAME_DIR``; else ``<repository>/flame_assets`` in a source
    checkout; else (an installed package) ``$XDG_CACHE_HOME/flap/flame_assets`` (``~/.cache/...``)."""
    env = os.environ.get("FLAP_FLAME_DIR")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "flame_assets").is_dir() and (checkout / "setup.cfg").is_file():
        return checkout / "flame_assets"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "flap" / "flame_assets"


def read_ply(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a triangle mesh from a binary-little-endian or ASCII PLY file.

    Returns:
        vertices ``(V, 3)`` float32 and faces ``(F, 3)`` int64.

    Raises:
        ValueError: not a PLY triangle mesh with x, y, z vertex properties.
    """
    path = Path(path)
    raw = path.read_bytes()
    marker = b"end_header\n"
    if not raw.startswith(b"ply") or marker not in raw:
        raise InputError(f"{path}: not a PLY file (no 'ply' magic / 'end_header')")
    end = raw.index(marker) + len(marker)
    header = raw[:end].decode("ascii", "replace").splitlines()
    fmt = next((ln.split()[1] for ln in header if ln.startswith("format")), "")
    counts, props, current = {}, {"vertex": []}, None
    for ln in header:
        parts = ln.split()
        if parts[:1] == ["element"]:
            current = parts[1]
            counts[current] = int(parts[2])
            props.setdefault(current, [])
        elif parts[:1] == ["property"] and current:
            props[current].append(parts[-1])
    nv, nf = counts.get("vertex", 0), counts.get("face", 0)
    if props["vertex"][:3] != ["x", "y", "z"] or not nf:
        raise InputError(f"{path}: expected vertex x, y, z and a face element, found {props}")
    if fmt == "binary_little_endian":
        if len(props["vertex"]) != 3:
            raise InputError(f"{path}: binary PLY reader supports float x, y, z vertices only")
        verts = np.frombuffer(raw, dtype="<f4", count=nv * 3, offset=end).reshape(nv, 3)
        rec = np.dtype([("n", "u1"), ("i", "<i4", 3)])
        faces = np.frombuffer(raw, dtype=rec, count=nf, offset=end + nv * 12)
        if (faces["n"] != 3).any():
            raise InputError(f"{path}: only triangle faces are supported")
        return verts.astype(np.float32), faces["i"].astype(np.int64)
    if fmt == "ascii":
        lines = raw[end:].decode("ascii").split("\n")
        verts = np.array([ln.split()[:3] for ln in lines[:nv]], dtype=np.float32)
        faces = np.array([ln.split()[1:4] for ln in lines[nv : nv + nf]], dtype=np.int64)
        return verts, faces
    raise InputError(f"{path}: unsupported PLY format {fmt!r}")


def _dense(value) -> np.ndarray:
    if hasattr(value, "toarray"):
        return value.toarray()
    return np.asarray(value)


def load_flame_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a FLAME model file (``.pkl`` FLAME 2020 / 2023 / 2023 Open, or ``.npz``) into numpy arrays.

    Pickles go through :func:`flap.flame.safe_pickle.safe_load_pickle` (never executes code, chumpy
    not needed). ``J_regressor`` is densified. Optional eyelid blendshapes are read from keys
    ``l_eyelid`` / ``r_eyelid`` or from ``l_eyelid.npy`` / ``r_eyelid.npy`` beside the file.

    Raises:
        FileNotFoundError: missing file.
        UnsafePickleError: the pickle is not plain array data.
        ValueError: unknown suffix, missing key or wrong shape (names the file and key).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FLAME model file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        data = safe_load_pickle(path)
        if not isinstance(data, dict):
            raise InputError(f"{path}: expected a dict of arrays, found {type(data).__name__}")
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    else:
        raise InputError(f"{path}: expected a FLAME .pkl or .npz file, got suffix {suffix!r}")
    out: dict[str, np.ndarray] = {}
    for key, shape in REQUIRED_KEYS.items():
        if key not in data:
            raise InputError(f"{path}: missing key {key!r} (found keys {sorted(data)})")
        arr = _dense(data[key])
        if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
            raise InputError(f"{path}: key {key!r} has shape {arr.shape}, expected {shape}")
        out[key] = arr
    for side in ("l_eyelid", "r_eyelid"):
        if side in data:
            out[side] = _dense(data[side])
        elif (path.parent / f"{side}.npy").is_file():
            out[side] = np.asarray(safe_load_npy(path.parent / f"{side}.npy"))
    nv = out["v_template"].shape[0]
    for key in ("shapedirs", "posedirs", "weights", "l_eyelid", "r_eyelid"):
        if key in out and out[key].shape[0] != nv:
            raise InputError(f"{path}: key {key!r} has {out[key].shape[0]} vertices, v_template has {nv}")
    return out


def load_landmark_embeddings(
    static_path: str | os.PathLike | None = None, dynamic_path: str | os.PathLike | None = None
) -> dict[str, np.ndarray]:
    """Read FLAME landmark embeddings (defaults: RingNet's, shipped with the package).

    Returns:
        ``static_faces`` (51,) int64, ``static_bary`` (51, 3), ``dynamic_faces`` (79, 17) int64,
        ``dynamic_bary`` (79, 17, 3): triangle indices and barycentric weights. The 51 static points
        are iBUG-68 points 17–67; the dynamic ones the 17-point jaw contour (iBUG 0–16) for yaw from
        -39° to 39° in 1° steps (FLAME / RingNet convention).

    Raises:
        ValueError: a file without the expected keys or shapes (names the file).
    """
    static_path = Path(static_path or STATIC_EMBEDDING)
    dynamic_path = Path(dynamic_path or DYNAMIC_EMBEDDING)
    static = safe_load_npy(static_path) if static_path.suffix == ".npy" else safe_load_pickle(static_path)
    dynamic = safe_load_npy(dynamic_path) if dynamic_path.suffix == ".npy" else safe_load_pickle(dynamic_path)
    out = {}
    for name, src, path, faces_shape in (
        ("static", static, static_path, (51,)),
        ("dynamic", dynamic, dynamic_path, (79, 17)),
    ):
        if not isinstance(src, dict) or not {"lmk_face_idx", "lmk_b_coords"} <= set(src):
            raise InputError(f"{path}: expected a dict with 'lmk_face_idx' and 'lmk_b_coords'")
        faces = np.asarray(src["lmk_face_idx"]).astype(np.int64)
        bary = np.asarray(src["lmk_b_coords"], dtype=np.float64)
        if faces.shape != faces_shape or bary.shape != (*faces_shape, 3):
            raise ValueError(
                f"{path}: 'lmk_face_idx' / 'lmk_b_coords' have shapes {faces.shape} / {bary.shape}, "
                f"expected {faces_shape} / {(*faces_shape, 3)}"
            )
        out[f"{name}_faces"], out[f"{name}_bary"] = faces, bary
    return out
