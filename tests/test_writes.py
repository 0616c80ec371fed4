"""Writes that fail cleanly: a read-only file system, a full disk, a folder this user may not write, a file where a
folder should be. Each gives one line and exit 2 and loses nothing already saved.

As root where `mount` works (here, and in CI), the tests use the real thing: a read-only bind mount and a tiny
tmpfs, which raise the errors a shared volume or a full disk raise. Elsewhere they fall back to a simulation and say
so with a warning in the test report.
"""

import errno
import os
import shutil
import subprocess
import warnings

import pytest

import vae_tf
from vae_tf.checkpoints import Checkpointer
from vae_tf.cli import analyze_main, train_main

from conftest import ROOT, mount, read_only_view, snapshot_of, tiny_args


@pytest.fixture(autouse=True)
def in_the_project(monkeypatch):
    """train_main reads params.py from the working folder, as train.py does."""
    monkeypatch.chdir(ROOT)


def test_a_run_on_a_read_only_file_system_is_one_line_in_both_scripts(tmp_path, monkeypatch, capsys):
    writable = tmp_path / "writable"
    assert train_main([f"--output_dir={writable}", "--run_name=run", *tiny_args(num_steps=3)]) == 0
    before = snapshot_of(writable)
    capsys.readouterr()
    with read_only_view(writable, tmp_path / "shared", monkeypatch) as how:
        view = tmp_path / "shared"
        assert train_main([f"--output_dir={view}", "--run_name=run", *tiny_args(num_steps=6)]) == 2  # resume it
        assert train_main([f"--output_dir={view}", "--run_name=new", *tiny_args(num_steps=6)]) == 2  # a new run
        assert analyze_main([str(view / "run"), "--no_tsne"]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
    print(f"file system: {how}")
    assert len(lines) == 3, lines
    assert all(line.startswith("error: cannot write ") and "(Read-only file system)" in line for line in lines), lines
    assert str(view / "run") in lines[0] and str(view / "new") in lines[1] and str(view / "run") in lines[2]
    assert "resume from step 3" in lines[0] and "analyse a copy of the run" in lines[2]
    assert snapshot_of(writable) == before


@pytest.mark.slow
def test_a_disk_that_fills_mid_run_keeps_its_last_checkpoint_and_resumes_when_space_is_back(tmp_path, monkeypatch,
                                                                                                 capsys):
    disk = tmp_path / "disk"
    disk.mkdir()
    real = mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", disk)
    try:
        args = [f"--output_dir={disk}", "--run_name=full",
                *tiny_args(num_steps=3, checkpoint_step=3, plot_step=0, log_step=[], validation_step=0)]
        assert train_main(args) == 0
        first = snapshot_of(disk / "full" / "checkpoints")
        log = (disk / "full" / "log.csv").read_text()
        longer = [*args, "--num_steps=9"]
        if real:
            # Leave 40 KB free: the log rows of steps 3 to 5 fit, the checkpoint at step 6 (about 75 KB) does not.
            free = shutil.disk_usage(disk).free
            (disk / "filler").write_bytes(b"\0" * (free - 40 * 1024))
        else:
            warnings.warn("no tmpfs here (not root, or the container forbids it): the full disk is simulated")

            def no_space(self, step, best=False):
                (disk / "full" / "checkpoints" / f"ckpt-{step}.data-00000-of-00001").write_bytes(b"half a file")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(disk / "full" / "checkpoints"))

            monkeypatch.setattr(Checkpointer, "save", no_space)
        capsys.readouterr()
        assert train_main(longer) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        print(f"file system: {'a 1 MB tmpfs' if real else 'simulated'}")
        assert len(lines) == 1 and "(No space left on device)" in lines[0], lines
        assert "free some space, then rerun the same command to resume from step 3" in lines[0]
        after = snapshot_of(disk / "full" / "checkpoints")
        assert {p: b for p, b in after.items() if p in first} == first  # the saved checkpoint is untouched
        assert vae_tf.load_run(disk / "full").optimizer.iterations.numpy() == 3
        (disk / "filler").unlink(missing_ok=True)
        monkeypatch.undo()
        assert train_main(longer) == 0
        resumed = (disk / "full" / "log.csv").read_text()
        assert resumed.startswith(log) and [line.split(",")[0] for line in resumed.splitlines()[1:]] == [
            str(step) for step in range(9)]
        assert vae_tf.load_run(disk / "full").optimizer.iterations.numpy() == 9
    finally:
        if real:
            subprocess.run(["umount", str(disk)], check=True)


def test_a_file_where_the_output_folder_should_be_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the output folder should be")
    assert train_main([f"--output_dir={blocker}", *tiny_args()]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(blocker) in lines[0] and "a file stands where a folder should be" in lines[0], lines
    assert blocker.read_text() == "a file where the output folder should be"


def test_a_run_folder_this_user_may_not_write_is_one_line(tmp_path, monkeypatch, capsys):
    """As another user, a folder without write permission; as root (who writes anywhere) simulated where the program
    first writes into it."""
    import pathlib

    from vae_tf import training
    assert train_main([f"--output_dir={tmp_path}", "--run_name=theirs", *tiny_args(num_steps=3)]) == 0
    before = snapshot_of(tmp_path / "theirs")
    capsys.readouterr()
    if os.geteuid() != 0:
        for folder in [tmp_path / "theirs", *(p for p in (tmp_path / "theirs").rglob("*") if p.is_dir())]:
            folder.chmod(0o555)
    else:
        def denied(path, *args, **kwargs):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

        monkeypatch.setattr(training, "open", denied, raising=False)  # the run folder's lock file
    try:
        assert train_main([f"--output_dir={tmp_path}", "--run_name=theirs", *tiny_args(num_steps=6)]) == 2
        if os.geteuid() == 0:
            monkeypatch.setattr(pathlib.Path, "mkdir", denied)  # its analysis folder
        assert analyze_main([str(tmp_path / "theirs")]) == 2
    finally:
        for folder in (tmp_path / "theirs", *(tmp_path / "theirs").rglob("*")):
            if folder.is_dir():
                folder.chmod(0o755)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all("(Permission denied)" in line and "copy of the run" in line for line in lines), lines
    assert lines[0].startswith(f"error: cannot write {tmp_path / 'theirs'}/.lock ")
    assert lines[1].startswith(f"error: cannot write {tmp_path / 'theirs' / 'analysis'} ")
    assert snapshot_of(tmp_path / "theirs") == before


def test_only_write_failures_become_the_one_line(tmp_path):
    """A write the user can fix is one line naming the path (the run folder when the failed write, to a file already
    open, names none); any other OSError is a bug or another problem and keeps its traceback."""
    from vae_tf.errors import cannot_write
    from vae_tf.runs import RunDir
    from vae_tf.training import _writes_to
    run = RunDir(tmp_path / "run")
    with pytest.raises(FileNotFoundError), _writes_to(run):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "data.npz")
    with pytest.raises(BrokenPipeError), _writes_to(run):
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))
    with pytest.raises(vae_tf.UserError) as error, _writes_to(run):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert str(error.value) == (f"cannot write {run.path} (No space left on device); free some space, then rerun the "
                                f"same command to start again")
    in_the_way = {number: cannot_write(OSError(number, os.strerror(number), "x"), "resume", "pick another folder")
                  for number in (errno.ENOTDIR, errno.EISDIR)}
    assert "a file stands where a folder should be" in in_the_way[errno.ENOTDIR]
    assert "a folder stands where a file should be" in in_the_way[errno.EISDIR]
