"""Models the package generates into its cache are written through a fresh private folder beside their
place (atomic_file.staged), never through a predictable temporary name a planted link could redirect."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from juno_bridge.atomic_file import staged


def test_a_file_appears_whole_and_nothing_is_left(tmp_path):
    with staged(tmp_path / "m.onnx") as tmp:
        assert tmp.name == "m.onnx" and tmp.parent.parent == tmp_path and oct(tmp.parent.stat().st_mode)[-3:] == "700"
        tmp.write_bytes(b"model")
        (tmp.parent / "m.onnx.data").write_bytes(b"weights")  # a sidecar beside it
        assert not (tmp_path / "m.onnx").exists()
    assert (tmp_path / "m.onnx").read_bytes() == b"model" and (tmp_path / "m.onnx.data").read_bytes() == b"weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]


def test_a_folder_model_and_a_failing_writer(tmp_path):
    with staged(tmp_path / "m.savedmodel") as tmp:
        tmp.mkdir()
        (tmp / "saved_model.pb").write_bytes(b"pb")
    assert (tmp_path / "m.savedmodel" / "saved_model.pb").read_bytes() == b"pb"
    with pytest.raises(RuntimeError), staged(tmp_path / "x.onnx") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("the exporter failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.savedmodel"]


def test_a_link_at_the_final_name_is_replaced_not_followed(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "m.onnx").symlink_to(outside)
    with staged(tmp_path / "cache" / "m.onnx") as tmp:
        tmp.write_bytes(b"model")
    assert outside.read_text() == "keep"
    assert not (tmp_path / "cache" / "m.onnx").is_symlink()


def test_the_built_in_models_ignore_links_planted_at_the_old_temporary_names(tmp_path, monkeypatch):
    from juno_bridge.demo.models import builtin

    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("JUNO_BRIDGE_CACHE", str(cache))
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    final = cache / f"tiny-{builtin.MODEL_REVISION}.onnx"
    for name in (final.with_suffix(f".tmp{os.getpid()}").name, f".{final.name}.tmp{os.getpid()}"):
        (cache / name).symlink_to(outside)  # the names earlier releases wrote through
    path = builtin.builtin_model("tiny")
    assert Path(path) == final and final.is_file() and not final.is_symlink()
    assert outside.read_text() == "keep"
