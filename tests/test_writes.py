"""Outputs are safe and reproducible: a failed write leaves the old file whole; a PDF is the same bytes twice."""

from __future__ import annotations

import errno
import os
import stat
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

import symbolic._atomic
import symbolic._pdf
from numeric.cli import main
from symbolic import TUTORIAL, ChainruleError, LatexFailed, derive
from symbolic._atomic import write_atomically
from symbolic._formats import render_pdf
from symbolic._pdf import OutputError, build_pdf


@pytest.fixture
def disk_full_half_way(monkeypatch):
    """Writes through os.fdopen get half their bytes on disk, then ENOSPC: a disk filling up mid-write."""
    real = os.fdopen

    class HalfWriter:
        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            self.handle.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    monkeypatch.setattr(symbolic._atomic.os, "fdopen", lambda fd, mode: HalfWriter(real(fd, mode)))


def test_a_write_that_fails_half_way_leaves_the_old_file_whole(tmp_path, disk_full_half_way):
    target = tmp_path / "derivation.tex"
    target.write_text("the old derivation\n" * 500)
    with pytest.raises(OSError, match="No space left"):
        write_atomically(target, "the new one\n" * 1000)
    assert target.read_text() == "the old derivation\n" * 500
    assert sorted(p.name for p in tmp_path.iterdir()) == ["derivation.tex"]  # no temporary file left behind


def test_the_cli_keeps_the_old_file_when_the_disk_fills(tmp_path, disk_full_half_way, capsys):
    target = tmp_path / "d.tex"
    target.write_text("old")
    assert main(["derive", "--format", "latex", "-o", str(target)]) == 3
    assert capsys.readouterr().err.strip() == f"chainrule: error: cannot write -o {target}: No space left on device"
    assert target.read_text() == "old"


def test_a_replaced_file_keeps_its_mode_and_a_link_its_target(tmp_path):
    target = tmp_path / "kept.tex"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "link.tex"
    link.symlink_to(target)
    write_atomically(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    fresh, plain = tmp_path / "fresh.tex", tmp_path / "plain.tex"
    write_atomically(fresh, b"x")
    plain.write_bytes(b"x")  # what open() makes under this umask
    assert stat.S_IMODE(fresh.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_render_pdf_to_a_folder_is_a_chainrule_error(tmp_path):
    with pytest.raises(OutputError, match="is a folder") as caught:
        render_pdf(derive(TUTORIAL), tmp_path)
    assert isinstance(caught.value, ChainruleError) and isinstance(caught.value, OSError)
    with pytest.raises(OutputError, match="is a file, not a folder"):
        (tmp_path / "plain").write_text("")
        render_pdf(derive(TUTORIAL), tmp_path / "plain" / "d.pdf")


def test_a_hanging_pdflatex_is_stopped_with_everything_it_started(tmp_path, monkeypatch):
    """A pdflatex that never ends, whose child keeps the output pipe open: stopped at the timeout, promptly."""
    fake = tmp_path / "pdflatex"
    fake.write_text("#!/bin/sh\nsleep 60 &\nsleep 60\n")
    fake.chmod(0o755)
    monkeypatch.setattr(symbolic._pdf, "pdflatex_path", lambda: str(fake))
    start = time.perf_counter()
    with pytest.raises(LatexFailed, match=r"did not finish within 0\.5 s"):
        build_pdf("\\documentclass{article}\\begin{document}x\\end{document}\n", tmp_path / "d.pdf", timeout=0.5)
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "d.pdf").exists()


def test_two_pdf_builds_are_the_same_bytes(tmp_path, pdflatex, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    document = derive(TUTORIAL).latex(document=True)
    build_pdf(document, tmp_path / "first.pdf")
    time.sleep(1.1)  # pdfTeX's time stamps have a resolution of one second
    build_pdf(document, tmp_path / "second.pdf")
    first = (tmp_path / "first.pdf").read_bytes()
    assert first.startswith(b"%PDF-") and first == (tmp_path / "second.pdf").read_bytes()
    assert b"/CreationDate" not in first


def test_source_date_epoch_sets_the_pdfs_dates(tmp_path, pdflatex, monkeypatch):
    epoch = 1_700_000_000
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(epoch))
    build_pdf(derive(TUTORIAL).latex(document=True), tmp_path / "d.pdf")
    stamp = datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("D:%Y%m%d%H%M%SZ").encode()
    data = (tmp_path / "d.pdf").read_bytes()
    assert b"/CreationDate (" + stamp + b")" in data and b"/ModDate (" + stamp + b")" in data


def test_a_pdf_write_that_fails_keeps_the_old_pdf(tmp_path, pdflatex, disk_full_half_way):
    target = Path(tmp_path / "d.pdf")
    target.write_bytes(b"%PDF- the old one")
    with pytest.raises(OutputError, match="No space left"):
        build_pdf(derive(TUTORIAL).latex(document=True), target)
    assert target.read_bytes() == b"%PDF- the old one"


# --- -o onto a file that is not a regular file: written into, never replaced by a rename ----------------------


def _device(tmp_path: Path, name: str, minor: int) -> Path:
    """A character device inside tmp_path with Linux's numbers of /dev/null (1, 3) or /dev/full (1, 7).

    Never the real /dev/null or /dev/full: if the fix regressed, the test would replace them for the machine.
    """
    path = tmp_path / name
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
        with open(path, "wb"):  # a file system mounted nodev refuses to open it
            pass
    except (PermissionError, OSError) as error:
        pytest.skip(f"cannot make a device node here: {error}")
    return path


def test_o_onto_a_full_device_fails_with_enospc_and_keeps_the_device(tmp_path, capsys):
    full = _device(tmp_path, "full", 7)
    assert main(["derive", "-o", str(full)]) == 3
    assert capsys.readouterr().err.strip() == f"chainrule: error: cannot write -o {full}: No space left on device"
    assert stat.S_ISCHR(full.stat().st_mode)  # still the device, not a regular file in its place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]  # no temporary file left behind


def test_o_onto_a_null_device_succeeds_and_keeps_the_device(tmp_path, capsys):
    null = _device(tmp_path, "null", 3)
    link = tmp_path / "link"
    link.symlink_to(null)  # followed: the device behind the link is written into
    assert main(["derive", "-o", str(link)]) == 0
    assert capsys.readouterr().out == f"wrote {link}\n"
    assert stat.S_ISCHR(null.stat().st_mode) and link.is_symlink()


def test_o_onto_a_fifo_sends_the_data_to_its_reader(tmp_path, capsys):
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    assert main(["derive", "--format", "latex", "-o", str(fifo)]) == 0
    reader.join(30)
    assert received == [derive(TUTORIAL).latex(document=True, values=symbolic.TUTORIAL_VALUES).encode()]
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    capsys.readouterr()


def test_a_special_file_check_that_says_not_regular_writes_in_place(tmp_path, monkeypatch):
    """The decision itself: a path taken for a special file is opened and written, with no rename."""
    target = tmp_path / "taken_for_a_device"
    target.write_text("old content")
    monkeypatch.setattr(symbolic._atomic, "_is_special", lambda path: True)
    monkeypatch.setattr(symbolic._atomic.os, "replace", lambda *a: pytest.fail("renamed a special file"))
    inode = target.stat().st_ino
    write_atomically(target, "new")
    assert target.stat().st_ino == inode and target.read_text() == "new"


@pytest.mark.parametrize("output", [None, 123, b"d.pdf"])
def test_render_pdf_to_something_not_a_file_name_is_an_input_type_error(output):
    from symbolic import InputTypeError

    with pytest.raises(InputTypeError, match="must be a file name") as caught:
        render_pdf(derive(TUTORIAL), output)
    assert isinstance(caught.value, TypeError)  # and a TypeError, as Python's own would be
    with pytest.raises(InputTypeError, match="must be a file name"):
        build_pdf("\\documentclass{article}\\begin{document}x\\end{document}\n", output)
