"""A run folder on disk: one writer at a time, complete checkpoints and best models swapped in by renames, files
written whole, and an `--overwrite` that keeps the old run until the new one has its first checkpoint.

Layout beside and inside a run folder `runs/x`:
    runs/.x.lock                  the writer's lock (fcntl.flock), removed when it ends
    runs/.x.replaced              the old run, moved aside by --overwrite until the new run commits
    runs/x/checkpoints/last       the newest complete checkpoint (last.new: being written; last.old: during a swap)
    runs/x/best                   the best model (best.new: being written; best.old: during a swap)

No torch import: the launchers (pclm.runs) use this module too."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import UsageError

__all__ = [
    "STATE_FILE",
    "find_checkpoint",
    "write_atomic",
    "swap_in",
    "recover",
    "RunFolder",
    "is_main_rank",
    "check_overwritable",
    "is_run_folder",
    "is_disk_full",
    "check_writable",
]

STATE_FILE = "pclm_state.json"
RUN_MARKER = "config.json"  # written first into every run folder: --overwrite replaces only folders holding it


def find_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run: checkpoints/last, or checkpoints/last.old when the run was killed
    while swapping a new checkpoint in. None when there is neither (checkpoints/last.new alone is incomplete)."""
    for name in ("last", "last.old"):
        path = Path(output_dir) / "checkpoints" / name
        if (path / STATE_FILE).is_file():
            return path
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`: a reader (or a kill) sees the old
    file or the new one, never a part."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; a run's files are as readable as any file it writes
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def swap_in(new: Path, final: Path) -> None:
    """Replace folder `final` by the complete folder `new`: final -> final.old, new -> final, drop final.old. A kill
    at any moment leaves `final` or `final.old` complete (`recover` puts final.old back)."""
    old = final.with_name(final.name + ".old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _aside(output_dir: Path) -> Path:
    return output_dir.with_name(f".{output_dir.name}.replaced")


def recover(output_dir: Path) -> None:
    """Finish or undo what a killed writer left: the old run moved aside by --overwrite comes back unless the new run
    has a checkpoint (then both stay: the new one can be resumed, the old one waits until the new one ends well), a
    best model caught mid-swap comes back, half-written copies go."""
    aside = _aside(output_dir)
    if aside.is_dir() and find_checkpoint(output_dir) is None:
        shutil.rmtree(output_dir, ignore_errors=True)
        aside.rename(output_dir)
    best, old = output_dir / "best", output_dir / "best.old"
    if old.is_dir() and not best.exists():
        old.rename(best)
    shutil.rmtree(output_dir / "best.new", ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    if output_dir.is_dir():  # write_atomic's temporary files of a writer killed mid-write
        for tmp in output_dir.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_LOW_SPACE = 2**20  # bytes: less than this free after a failed write means the write failed for lack of space


def is_disk_full(err: BaseException, path: Path) -> bool:
    """Whether `err`, raised while a run wrote under `path`, means the disk (or the user's quota) is full: an OSError
    ENOSPC / EDQUOT in its chain, the same error as text (safetensors' Rust writer: "os error 28"), or a failed
    torch.save (its C++ writer says only "unexpected pos" or "iostream error") on a filesystem with under 1 MiB free."""
    seen: list[BaseException] = []
    e: BaseException | None = err
    while e is not None and e not in seen:
        seen.append(e)
        if isinstance(e, OSError) and e.errno in _DISK_FULL:
            return True
        if any(s in str(e) for s in ("No space left on device", "Disk quota exceeded", "os error 28")):
            return True
        e = e.__cause__ or e.__context__
    if not any(type(e).__name__ in ("RuntimeError", "SafetensorError") for e in seen):
        return False
    try:
        here = next(p for p in [Path(path), *Path(path).parents] if p.exists())
        free = os.statvfs(here)
    except (OSError, StopIteration):
        return False
    return free.f_bavail * free.f_frsize < _LOW_SPACE


def check_writable(files: list[Path], where: str) -> None:
    """Refuse (UsageError), before any work, output `files` this process could not write: a file where their folder
    must be made, a folder it may not write in, a folder or a read-only file in a file's place. `where` names the
    folder in the message ("--out-dir"). Creates nothing: a file made and removed at once in the nearest existing
    folder is the probe, since permission bits alone miss a read-only mount and root ignores them."""
    for folder in dict.fromkeys(Path(f).parent for f in files):
        existing = next(q for q in [folder, *folder.parents] if q.exists())
        if not existing.is_dir():
            code = errno.EEXIST if existing == folder else errno.ENOTDIR
            raise UsageError(f"cannot create {where} '{folder}': {os.strerror(code)}")
        try:
            fd, probe = tempfile.mkstemp(dir=existing, prefix=".write-test-")
            os.close(fd)
            os.unlink(probe)
        except OSError as err:
            raise UsageError(f"cannot write in {where} '{existing}': {err.strerror or err}") from None
    for path in map(Path, files):
        if path.is_dir() or (path.exists() and not os.access(path, os.W_OK)):
            raise UsageError(f"cannot write '{path}': {'a folder' if path.is_dir() else 'not writable'}")


def is_main_rank() -> bool:
    """Whether this is the launch's first process (RANK 0, or no launcher at all), the one that owns the folder."""
    return os.environ.get("RANK", "0") == "0"


class RunFolder:
    """One writer's hold on a run folder, used as `with RunFolder(path) as folder:` around a whole training job.

    On entry (first rank only): the lock `.<name>.lock` beside the folder is taken without waiting (a second writer
    gets a UsageError) and `recover` runs. `start_fresh` makes the folder for a new run, moving an existing run aside
    (--overwrite); `commit` drops the old run once the new one has ended well, `restore` puts it back when the new one
    diverged. On an exception before either, the old run comes back unless the new one has a checkpoint to resume
    from (then both stay until the new one ends); after bad input (UsageError) a folder this job made is removed, so
    nothing is left. On exit the lock file is removed, with any parent folder this job made."""

    def __init__(self, output_dir: Path, owner: bool | None = None) -> None:
        # the real path: two writers reaching one folder through different paths (a symlink) share one lock, and
        # --overwrite moves the folder aside, not a link to it
        self.output_dir = Path(output_dir).resolve()
        self.owner = is_main_rank() if owner is None else owner
        self.lock_path = self.output_dir.with_name(f".{self.output_dir.name}.lock")
        self._fd: int | None = None
        self._made_parents: list[Path] = []
        self._made_folder = False
        self._started = False  # start_fresh ran: the folder holds this run's files only
        self._committed = False

    def __enter__(self) -> RunFolder:
        if self.owner:
            self._lock()
            try:
                recover(self.output_dir)
            except OSError as err:
                self._unlock()
                raise UsageError(f"cannot recover run folder '{self.output_dir}': {err.strerror or err}") from None
        return self

    def _lock(self) -> None:
        parent = self.output_dir.parent
        missing = [p for p in [parent, *parent.parents] if not p.exists()]
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self._made_parents = missing  # deepest first: removed in this order when empty
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            self._remove_parents()
            raise UsageError(f"cannot create run folder '{self.output_dir}': {err.strerror or err}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise UsageError(
                    f"run folder '{self.output_dir}' is in use by another process (it holds "
                    f"{self.lock_path}); wait for it to end or stop it"
                ) from None
            raise
        try:  # the lock file may have been removed by its previous holder between our open and our lock
            same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            raise UsageError(
                f"run folder '{self.output_dir}' is in use by another process (its lock changed hands); try again"
            )
        self._fd = fd

    def _unlock(self) -> None:
        if self._fd is not None:
            self.lock_path.unlink(missing_ok=True)  # unlinked while held: a waiter sees the inode change
            os.close(self._fd)
            self._fd = None
        self._remove_parents()

    def _remove_parents(self) -> None:
        for p in self._made_parents:
            try:
                p.rmdir()
            except OSError:
                break  # not empty (the run folder, or someone else's files): keep it and its parents
        self._made_parents = []

    def start_fresh(self, overwrite: bool) -> None:
        """Make an empty folder for a new run; an existing non-empty one is moved aside when `overwrite`."""
        if not self.owner:
            return
        out = self.output_dir
        if out.is_dir() and any(out.iterdir()):
            if not overwrite:  # checked before by the job; here in case the folder filled since
                raise UsageError(f"output directory '{out}' is not empty (pass --overwrite or --resume)")
            if _aside(out).is_dir():  # an unfinished replacement of the run aside: it goes, the run aside stays
                shutil.rmtree(out)
            else:
                out.rename(_aside(out))
        existed = out.is_dir()
        self._started = True
        out.mkdir(parents=True, exist_ok=True)
        self._made_folder = not existed

    def commit(self) -> None:
        """The new run has ended well: the run it replaced is dropped."""
        if self.owner and not self._committed:
            shutil.rmtree(_aside(self.output_dir), ignore_errors=True)
            self._committed = True

    def restore(self) -> bool:
        """The new run failed (diverged): the run it replaced, if any, comes back in its place. Whether one did."""
        if not self.owner or self._committed or not _aside(self.output_dir).is_dir():
            return False
        shutil.rmtree(self.output_dir, ignore_errors=True)
        _aside(self.output_dir).rename(self.output_dir)
        self._committed = True
        return True

    def abandon(self) -> str:
        """The run cannot go on (its disk is full): keep the folder only where `--resume` continues it, with the
        half-written copies dropped; else put back the run it replaced, or remove what this job wrote. Returns what
        was kept, in words for the error line."""
        out = self.output_dir
        if not self.owner:
            return "the first process says what was kept"
        self._committed = True  # the folder stays as left here: __exit__ changes nothing more
        aside = _aside(out)
        if aside.is_dir() and find_checkpoint(out) is None:
            shutil.rmtree(out, ignore_errors=True)
            aside.rename(out)
            return f"the run it was to replace is back in '{out}', untouched"
        recover(out)  # half-written best model and files go, with the half-written checkpoint: space freed
        shutil.rmtree(out / "checkpoints" / "last.new", ignore_errors=True)
        if find_checkpoint(out) is not None:
            return f"'{out}' keeps its last checkpoint: free some space, then continue it with --resume"
        if self._made_folder:
            shutil.rmtree(out, ignore_errors=True)
            return f"there was no checkpoint yet, so '{out}' was removed: free some space and start it again"
        if not self._started:
            return f"'{out}' is as it was: free some space and try again"
        for child in out.iterdir() if out.is_dir() else []:  # the folder was there, empty: empty again
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        return f"there was no checkpoint yet, so '{out}' was emptied: free some space and start it again"

    def __exit__(self, kind, error, tb) -> None:
        if not self.owner:
            return
        try:
            if error is not None and not self._committed:
                aside = _aside(self.output_dir)
                if aside.is_dir() and find_checkpoint(self.output_dir) is None:
                    shutil.rmtree(self.output_dir, ignore_errors=True)
                    aside.rename(self.output_dir)
                elif self._made_folder and isinstance(error, UsageError):
                    shutil.rmtree(self.output_dir, ignore_errors=True)
        finally:
            self._unlock()


def is_run_folder(output_dir: Path) -> bool:
    """Whether `output_dir` holds a pclm run's `config.json` (a JSON object with the keys every run config has:
    `algo`, `seed`, `train`). A Hugging Face model folder also holds a `config.json`, with `model_type` instead."""
    try:
        config = json.loads((Path(output_dir) / RUN_MARKER).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(config, dict) and {"algo", "seed", "train"} <= config.keys() and "model_type" not in config


def check_overwritable(output_dir: Path) -> None:
    """--overwrite replaces a run folder, nothing else: a non-empty folder must hold the `config.json` every run
    writes first (not a model's: a saved model is never a run)."""
    if output_dir.is_dir() and any(output_dir.iterdir()) and not is_run_folder(output_dir):
        raise UsageError(
            f"--overwrite replaces only a run folder (one holding a pclm run's {RUN_MARKER}); '{output_dir}' holds "
            "other files: remove them yourself or choose another --output-dir"
        )
