"""Loading FLAME pickles (and pickled ``.npy`` embeddings) without ever executing code from the file.

FLAME's ``generic_model.pkl`` (2020) and ``flame2023*.pkl`` are Python-2 pickles that hold numpy
arrays, a ``scipy.sparse`` ``J_regressor`` and, in the 2020 release, ``chumpy.Ch`` objects. Plain
``pickle.load`` on a user's file would run any callable the file names (``os.system`` ...), so
:class:`RestrictedUnpickler` resolves only an allow-list of array-reconstruction globals. ``chumpy``
objects become inert stubs and are turned into numpy arrays, so chumpy need not be installed.

Anything else (a ``__reduce__`` that names ``os.system``, ``builtins.eval``, ``subprocess`` ...) is
refused with :class:`UnsafePickleError` naming the file and the global.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from flap.errors import FlapError

__all__ = ["UnsafePickleError", "RestrictedUnpickler", "safe_load_pickle", "safe_load_npy", "to_numpy_tree"]


class UnsafePickleError(FlapError, pickle.UnpicklingError):
    """A pickle asked for a global outside the allow-list (possible code execution)."""


def _reconstructor(cls, base, state):
    """``copyreg._reconstructor`` restricted to classes this module already allowed."""
    if base is not object:
        raise UnsafePickleError(f"refusing copyreg reconstruction with base {base!r}")
    obj = object.__new__(cls)
    if state is not None:
        raise UnsafePickleError("refusing copyreg reconstruction with state")
    return obj


class _ChumpyStub:
    """Inert stand-in for any ``chumpy`` class; keeps the pickled state (``x`` holds the value)."""

    _chumpy_name = "chumpy"

    def __setstate__(self, state):
        self._state = state

    def __init__(self, *args, **kwargs):  # for REDUCE-style reconstruction
        self._state = {"args": args, **kwargs}

    def value(self) -> np.ndarray:
        state = getattr(self, "_state", None)
        if isinstance(state, dict):
            for key in ("x", "a"):
                if key in state:
                    return np.asarray(to_numpy_tree(state[key]))
        if isinstance(state, tuple) and state and isinstance(state[-1], dict) and "x" in state[-1]:
            return np.asarray(to_numpy_tree(state[-1]["x"]))
        raise UnsafePickleError(
            f"chumpy object {self._chumpy_name} holds no stored array value ('x'); "
            "re-save the model with numpy arrays (or install chumpy-fixed and convert it once)"
        )


def _chumpy_class(module: str, name: str) -> type:
    return type(name, (_ChumpyStub,), {"_chumpy_name": f"{module}.{name}"})


def _sparse_class(name: str):
    import scipy.sparse as sp

    return getattr(sp, name)


_SPARSE = {"csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array"}
_SPARSE_MODULES = {"scipy.sparse", "scipy.sparse.csc", "scipy.sparse.csr", "scipy.sparse.coo",
                   "scipy.sparse._csc", "scipy.sparse._csr", "scipy.sparse._coo"}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy / scipy.sparse / chumpy array reconstruction.

    Allowed globals: ``numpy.core.multiarray._reconstruct`` / ``scalar`` (and their ``numpy._core``
    names), ``numpy.ndarray``, ``numpy.dtype``, numpy scalar types, ``scipy.sparse`` CSC/CSR/COO
    classes, ``copyreg._reconstructor`` (restricted to those classes) and ``object``; any ``chumpy.*``
    class maps to an inert stub.

    Raises:
        UnsafePickleError: on any other global.
    """

    def __init__(self, file, *, source: str = "<pickle>", **kwargs):
        super().__init__(file, **kwargs)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        mod = module.replace("numpy.core", "numpy._core", 1) if module.startswith("numpy.core") else module
        if mod in ("numpy._core.multiarray",) and name in ("_reconstruct", "scalar"):
            import numpy._core.multiarray as ma

            return getattr(ma, name)
        if mod == "numpy._core.numeric" and name == "_frombuffer":
            import numpy._core.numeric as nm

            return nm._frombuffer
        if mod == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if mod == "numpy" and name in ("float64", "float32", "int64", "int32", "uint32", "uint8", "bool_"):
            return getattr(np, name)
        if mod == "numpy.dtypes" and name.endswith("DType"):
            import numpy.dtypes as nd

            return getattr(nd, name)
        if mod in _SPARSE_MODULES and name in _SPARSE:
            return _sparse_class(name)
        if mod in ("copy_reg", "copyreg") and name == "_reconstructor":
            return _reconstructor
        if mod == "_codecs" and name == "encode":  # how protocol-2 pickles from Python 3 store bytes
            import _codecs

            return _codecs.encode
        if mod in ("__builtin__", "builtins") and name in ("object", "set", "frozenset"):
            return {"object": object, "set": set, "frozenset": frozenset}[name]
        if mod == "chumpy" or mod.startswith("chumpy."):
            return _chumpy_class(mod, name)
        raise UnsafePickleError(
            f"{self.source}: refusing to load: the pickle asks for the global '{module}.{name}', which is not "
            "an array type (FLAME files hold only numpy/scipy.sparse/chumpy arrays). The file may be "
            "malicious or not a FLAME model."
        )


def to_numpy_tree(obj: Any) -> Any:
    """Convert chumpy stubs to numpy arrays inside dicts / lists / tuples (sparse matrices kept)."""
    if isinstance(obj, _ChumpyStub):
        return obj.value()
    if isinstance(obj, dict):
        return {k: to_numpy_tree(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_numpy_tree(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_numpy_tree(v) for v in obj)
    return obj


def _loads(data: bytes, source: str) -> Any:
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), source=source, encoding="latin1").load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # truncated or not a pickle at all
        raise ValueError(f"{source}: not a readable pickle ({type(exc).__name__}: {exc})") from exc
    return to_numpy_tree(obj)


def safe_load_pickle(path: str | os.PathLike) -> Any:
    """Load a (Python 2 or 3) pickle of arrays without executing code; chumpy → numpy.

    Raises:
        FileNotFoundError: the file does not exist.
        UnsafePickleError: the pickle names a global outside the allow-list (message names the file).
        ValueError: the file is not a readable pickle.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    return _loads(path.read_bytes(), str(path))


def safe_load_npy(path: str | os.PathLike) -> Any:
    """Load an ``.npy`` file; object arrays (pickled payload) go through :class:`RestrictedUnpickler`.

    A 0-d object array (e.g. a pickled dict, as in FLAME's dynamic landmark embedding) is returned
    as the object itself.

    Raises:
        FileNotFoundError, UnsafePickleError, ValueError: as :func:`safe_load_pickle`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    with open(path, "rb") as fh:
        try:
            version = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            _shape, _fortran, dtype = read_header(fh)
        except ValueError as exc:
            raise ValueError(f"{path}: not a .npy file ({exc})") from exc
        if not dtype.hasobject:
            fh.seek(0)
            return np.load(fh, allow_pickle=False)
        obj = _loads(fh.read(), str(path))
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        return obj.item()
    return obj
