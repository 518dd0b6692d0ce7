"""tinynet.files.atomic_write: permissions, full disks and signals never cost the old file."""

import errno
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tinynet
from tinynet import models
from tinynet.files import TEMP_PREFIX, atomic_write

ROOT = Path(__file__).resolve().parent.parent


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def no_temp_files(folder):
    return not [n for n in os.listdir(folder) if n.startswith(TEMP_PREFIX)]


@pytest.fixture
def umask():
    """Set the umask for one test and put the old one back afterwards."""
    old = os.umask(0o022)
    yield lambda value: os.umask(value)
    os.umask(old)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_a_new_file_gets_the_mode_the_umask_gives(tmp_path, umask, mask, expected):
    umask(mask)
    atomic_write(tmp_path / "new.bin", lambda f: f.write(b"x"))
    assert mode(tmp_path / "new.bin") == expected


@pytest.mark.parametrize("existing", [0o644, 0o640, 0o664, 0o600])
def test_replacing_a_file_keeps_its_mode(tmp_path, umask, existing):
    umask(0o077)      # a strict umask must not narrow an existing file's permissions
    path = tmp_path / "m.bin"
    path.write_bytes(b"old")
    os.chmod(path, existing)
    atomic_write(path, lambda f: f.write(b"new"))
    assert path.read_bytes() == b"new"
    assert mode(path) == existing


def test_a_saved_model_over_a_readable_file_stays_readable(tmp_path, umask):
    path = tmp_path / "m.npz"
    models.mlp(np.random.default_rng(0), hidden=(4,)).save(path)
    assert mode(path) == 0o644                   # not the 0600 of a temporary file
    os.chmod(path, 0o664)
    models.mlp(np.random.default_rng(1), hidden=(4,)).save(path)
    assert mode(path) == 0o664
    assert no_temp_files(tmp_path)


def test_a_symbolic_link_is_kept_and_its_target_replaced(tmp_path):
    target = tmp_path / "real.bin"
    target.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(target.name)
    atomic_write(link, lambda f: f.write(b"new"))
    assert link.is_symlink() and target.read_bytes() == b"new"
    assert no_temp_files(tmp_path)


def test_a_full_disk_keeps_the_old_file_and_names_it(tmp_path):
    path = tmp_path / "m.bin"
    path.write_bytes(b"old model")

    def fill_the_disk(f):
        f.write(b"half of the new")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError) as info:
        atomic_write(path, fill_the_disk)
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(path)
    assert str(path) in str(info.value) and "No space left on device" in str(info.value)
    assert path.read_bytes() == b"old model"
    assert os.listdir(tmp_path) == ["m.bin"]


def test_a_missing_folder_is_reported_with_the_file_not_a_temporary_name(tmp_path):
    path = tmp_path / "no-such-folder" / "m.bin"
    with pytest.raises(FileNotFoundError) as info:
        atomic_write(path, lambda f: f.write(b"x"))
    assert info.value.filename == str(path)


def test_ctrl_c_while_writing_keeps_the_old_file_and_then_interrupts(tmp_path):
    path = tmp_path / "m.bin"
    path.write_bytes(b"old")
    written = []

    def write(f):
        f.write(b"new, part 1")
        os.kill(os.getpid(), signal.SIGINT)      # held back until the write is over
        f.write(b", part 2")
        written.append(True)

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, write)
    assert written == [True]                     # the write was not cut in the middle
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["m.bin"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


SIGTERM_WHILE_SAVING = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    sys.path.insert(0, {root!r})
    from tinynet import models
    real_savez = np.savez

    def savez_and_sigterm(f, **arrays):
        real_savez(f, **arrays)
        f.flush()
        print("temporary files:", [n for n in os.listdir({folder!r}) if n.startswith(".tmp-")],
              flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        real_savez(f, **arrays)

    np.savez = savez_and_sigterm
    models.mlp(np.random.default_rng(9), hidden=(4,)).save({path!r})
    print("not reached")
""")


def test_sigterm_while_saving_keeps_the_old_model_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "m.npz"
    models.mlp(np.random.default_rng(0), hidden=(4,)).save(path)
    before = path.read_bytes()
    script = SIGTERM_WHILE_SAVING.format(root=str(ROOT), folder=str(tmp_path), path=str(path))
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == -signal.SIGTERM, r.stderr
    assert "temporary files: ['.tmp-" in r.stdout          # it was killed mid-write...
    assert "not reached" not in r.stdout
    assert path.read_bytes() == before                      # ...and lost nothing
    assert os.listdir(tmp_path) == ["m.npz"]
    tinynet.load(path)


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout")
@pytest.mark.parametrize("name, ignored", [
    ("weights/mnist.checkpoint.npz", True), ("weights/mnist_mlp.checkpoint.npz", True),
    ("m.checkpoint.npz", True), ("weights/.tmp-0123abcd", True),
    ("weights/mnist.npz", False), ("weights/mnist_mlp.npz", False)])
def test_gitignore_hides_checkpoints_and_temporary_files_but_not_models(name, ignored):
    from tinynet import recipes

    if "checkpoint" in name:        # the name training really gives a checkpoint
        assert recipes.checkpoint_for(name.replace(".checkpoint", "")) == Path(name)
    r = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "--no-index", name])
    assert r.returncode == (0 if ignored else 1)


def test_saving_over_a_folder_names_it_and_leaves_no_temporary_file(tmp_path):
    folder = tmp_path / "m.npz"
    folder.mkdir()
    with pytest.raises(IsADirectoryError) as info:
        models.mlp(np.random.default_rng(0), hidden=(4,)).save(folder)
    assert info.value.filename == str(folder)
    assert os.listdir(tmp_path) == ["m.npz"] and os.listdir(folder) == []
