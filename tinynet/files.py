"""Writing files so that a crash never leaves a half-written one."""

import contextlib
import os
import secrets
import signal
import stat
import threading

TEMP_PREFIX = ".tmp-"
# Signals that normally end the program; while a file is being replaced they are held back
# so that the clean-up (removing the temporary file) cannot itself be interrupted.
_HELD_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None),
                                  getattr(signal, "SIGTERM", None),
                                  getattr(signal, "SIGHUP", None)) if s is not None)


def atomic_write(path, write):
    """Call ``write(f)`` on a temporary file beside ``path``, flush it to disk, then rename it
    over ``path``. Until the rename, any previous file at ``path`` is untouched; on any error
    (a full disk, Ctrl-C, SIGTERM) the temporary file is removed and ``path`` is left as it
    was.

    The new file gets the permissions of the file it replaces, or those the umask gives a new
    file (not the 0600 of a private temporary file). A symbolic link at ``path`` is kept and
    the file it points to is replaced. An ``OSError`` always names ``path``.

    Ctrl-C, SIGTERM and SIGHUP arriving while the file is written are held until the write is
    over; then the file is not renamed into place, the temporary file is removed, and the
    signal takes effect as usual (``KeyboardInterrupt`` for Ctrl-C).
    """
    path = os.fspath(path)
    shown = path
    if os.path.islink(path):
        path = os.path.realpath(path)
    folder = os.path.dirname(os.path.abspath(path))
    with _signals_held() as held:
        tmp = None
        try:
            fd, tmp = _create_temp(folder, _mode_for(path))
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            if held:
                # Interrupted while writing: keep the old file, as if the signal had come
                # a moment earlier.
                raise _Interrupted
            os.replace(tmp, path)
            tmp = None
        except _Interrupted:
            pass
        except OSError as exc:
            # np.savez and friends write to a file object, so their errors carry no file
            # name; a user needs to know which file could not be written.
            if exc.errno is None:
                if shown not in str(exc):
                    exc.args = (f"{shown}: {exc}",)
            elif exc.filename is None or os.path.basename(os.fspath(exc.filename)).startswith(
                    TEMP_PREFIX):
                exc.filename = shown
            raise
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


class _Interrupted(Exception):
    pass


def _mode_for(path):
    """Permission bits for the new file: those of the file being replaced, if any."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


def _create_temp(folder, mode):
    """A new, empty temporary file in ``folder``: (fd, path). Created with mode 0666 so the
    umask decides its permissions as for any new file, then set to ``mode`` if given."""
    for _ in range(100):
        tmp = os.path.join(folder, f"{TEMP_PREFIX}{secrets.token_hex(6)}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            exc.filename = None   # the caller names the destination, not this temporary name
            raise
        if mode is not None:
            try:
                os.fchmod(fd, mode)
            except (OSError, AttributeError):
                pass    # e.g. a file system without Unix permissions: the umask's mode stays
        return fd, tmp
    raise FileExistsError(f"cannot create a temporary file in {folder}")


@contextlib.contextmanager
def _signals_held():
    """Hold back Ctrl-C/SIGTERM/SIGHUP for the duration of the block, then deliver them.

    Yields a list that holds the signals received so far, so the block can give up early.
    Only the main thread receives signals (and may set handlers); elsewhere nothing changes.
    """
    held = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    previous = {}
    try:
        for sig in _HELD_SIGNALS:
            if signal.getsignal(sig) == signal.SIG_IGN:
                continue        # an ignored signal stays ignored (see interrupts_ignored)
            previous[sig] = signal.signal(sig, lambda signum, frame: held.append(signum))
        yield held
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        for sig in dict.fromkeys(held):
            signal.raise_signal(sig)


@contextlib.contextmanager
def interrupts_ignored():
    """Ignore Ctrl-C for the duration of the block (main thread only).

    For the moments after the user has already asked to stop, such as writing the checkpoint
    of an interrupted run: pressing Ctrl-C again then must not cost that file."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
