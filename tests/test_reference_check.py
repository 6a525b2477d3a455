"""``tools/reference_check.py``: bad references are refused in one line before any model loads."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("reference_check", ROOT / "tools" / "reference_check.py")
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)


@pytest.mark.parametrize("refs", [["a.png"], ["a.png", "missing.png"]], ids=["one", "missing"])
def test_needs_two_existing_references(tmp_path, capsys, refs):
    (tmp_path / "a.png").write_bytes(b"x")
    with pytest.raises(SystemExit) as exc:
        tool.main(["--checkpoint", str(tmp_path / "no_model"), "--references", *[str(tmp_path / r) for r in refs]])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--references: expected 2 or more existing images" in err
    assert ("missing.png" in err) == ("missing.png" in refs)
