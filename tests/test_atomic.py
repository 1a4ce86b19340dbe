import json

import pytest

from mdllm_kit.atomic import atomic_path, atomic_write_json, atomic_write_text


def test_atomic_write_text_replaces_content(tmp_path):
    dest = tmp_path / "a.txt"
    dest.write_text("old")
    atomic_write_text(dest, "new")
    assert dest.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    dest = tmp_path / "b.txt"
    dest.write_text("keep me")
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_text("half written")
            raise RuntimeError("crash mid-write")
    assert dest.read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["b.txt"]


def test_atomic_path_keeps_suffix_for_format_sniffing_writers(tmp_path):
    with atomic_path(tmp_path / "t.pdb") as tmp:
        assert tmp.suffix == ".pdb"
        assert tmp.parent == tmp_path
        tmp.write_text("END\n")
    assert (tmp_path / "t.pdb").read_text() == "END\n"


def test_atomic_write_json_round_trip_and_refuses_nan(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"b": 1, "a": [1.5, "x"]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": [1.5, "x"], "b": 1}
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "bad.json", {"x": float("nan")})
    assert not (tmp_path / "bad.json").exists()


def test_atomic_files_get_ordinary_permissions(tmp_path):
    import os
    import stat

    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "p.txt", "x")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "p.txt").stat().st_mode) == 0o644
