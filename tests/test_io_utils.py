"""All-or-nothing outputs and one-line messages (transformers_kronos.io_utils)."""

import os
import stat

import pytest

from transformers_kronos.io_utils import atomic_directory, make_folders, one_line, remove_folders, temporary_sibling


def test_atomic_directory_moves_the_finished_directory_into_place(tmp_path):
    destination = tmp_path / "a" / "b" / "out"
    with atomic_directory(destination) as tmp:
        (tmp / "x.txt").write_text("x")
        assert not destination.exists(), "nothing is visible at the destination before the block ends"
    assert (destination / "x.txt").read_text() == "x"
    assert sorted(p.name for p in destination.parent.iterdir()) == ["out"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(destination.stat().st_mode) == 0o777 & ~umask  # an ordinary folder, not mkdtemp's 0o700


def test_atomic_directory_replaces_an_existing_destination(tmp_path):
    destination = tmp_path / "out"
    destination.mkdir()
    (destination / "old.txt").write_text("old")
    with atomic_directory(destination) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in destination.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "no temporary folder is left behind"


def test_a_failure_leaves_nothing_and_keeps_the_old_destination(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_directory(tmp_path / "made" / "for" / "it") as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == [], "neither the partial output nor the folders made for it remain"
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "k.txt").write_text("k")
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(keep):
            raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["keep"] and (keep / "k.txt").read_text() == "k"


def test_make_and_remove_folders(tmp_path):
    (tmp_path / "a").mkdir()
    created = make_folders(tmp_path / "a" / "b" / "c")
    assert created == [tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"]
    (tmp_path / "a" / "b" / "other").mkdir()
    remove_folders(created)  # c is removed; b is not empty, so it and everything above stay
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["other"]


def test_temporary_sibling_is_an_ordinary_file_next_to_its_target(tmp_path):
    sibling = temporary_sibling(tmp_path / "forecast.csv")
    assert sibling.parent == tmp_path and sibling.suffix == ".csv" and sibling.read_bytes() == b""
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(sibling.stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize(
    "err,want",
    [(ValueError("a\n  b\tc "), "a b c"), (KeyError(), "KeyError"), (OSError("x"), "x")],
)
def test_one_line(err, want):
    assert one_line(err) == want
