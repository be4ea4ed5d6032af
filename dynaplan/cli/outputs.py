"""The output files of one command: checked before any work, committed together at the end.

A command reserves every path it may write (:meth:`OutputSet.file`, :meth:`OutputSet.in_dir`)
before it loads or solves anything; each reservation is checked at once (not a directory, a
parent directory that exists and is writable, not reserved twice) and a bad one raises
:class:`dynaplan.errors.ValidationError` naming the flag. The command then writes each output
to a temporary file beside its destination (:meth:`OutputSet.write`) and, only when the whole
run has succeeded, :meth:`OutputSet.commit` renames them all into place. A run that fails —
a user error, a failed independent check, an interrupted or closed pipe — leaves every existing
file as it was: the temporaries are deleted when the ``with`` block ends without a commit.

    with OutputSet() as outs:
        json_path = outs.file(json_out, "--json", suffixes=(".json",))
        ...                                   # the work
        outs.write(json_path, lambda tmp: tmp.write_text(text))
        outs.commit()
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dynaplan.errors import ValidationError


@dataclass
class _Entry:
    path: Path
    flag: str
    tmp: Path | None = None


def _suffix(path: Path) -> str:
    """Every suffix of the name (``.csv.gz``), kept on the temporary so writers pick the same format."""
    return "".join(path.suffixes[-2:]) if path.suffixes else ""


def _writable_dir(d: Path) -> bool:
    return d.is_dir() and os.access(d, os.W_OK | os.X_OK)


@dataclass
class OutputSet:
    """Reserved output paths of one run; see the module docstring."""

    _entries: dict[Path, _Entry] = field(default_factory=dict)
    _created_dirs: list[Path] = field(default_factory=list)
    committed: bool = False

    # ------------------------------------------------------------------ reservations
    def file(self, path: Path | str | None, flag: str, *, suffixes: Iterable[str] | None = None) -> Path | None:
        """Reserve the output file ``path`` of ``flag`` (None passes through)."""
        if path is None:
            return None
        path = Path(path)
        if suffixes is not None:
            allowed = tuple(s.lower() for s in suffixes)
            if not path.name.lower().endswith(allowed):
                raise ValidationError(f"{flag} {path}: expected a file name ending in {' or '.join(allowed)}")
        if path.is_dir():
            raise ValidationError(f"{flag} {path}: is a directory; expected a file name")
        if path.exists() and not path.is_file():
            raise ValidationError(f"{flag} {path}: exists and is not a regular file")
        parent = path.parent
        if not parent.is_dir():
            raise ValidationError(f"{flag} {path}: directory {parent} does not exist")
        self._check_dir_writable(parent, flag, path)
        return self._reserve(path, flag)

    def directory(self, path: Path | str, flag: str) -> Path:
        """Check an output directory: it may be created, but must not be a file or unwritable."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise ValidationError(f"{flag} {path}: exists and is not a directory")
        anc = path
        while not anc.exists():
            if anc.parent == anc:
                break
            anc = anc.parent
        if not anc.is_dir():
            raise ValidationError(f"{flag} {path}: {anc} is not a directory")
        self._check_dir_writable(anc, flag, path)
        return path

    def in_dir(self, directory: Path, name: str, flag: str) -> Path:
        """Reserve ``directory/name`` (``directory`` checked by :meth:`directory`)."""
        self.directory(directory, flag)
        path = Path(directory) / name
        if path.is_dir():
            raise ValidationError(f"{flag} {directory}: {path} is a directory; it would be replaced by a file")
        if path.exists() and not path.is_file():
            raise ValidationError(f"{flag} {directory}: {path} exists and is not a regular file")
        return self._reserve(path, flag)

    def _reserve(self, path: Path, flag: str) -> Path:
        key = path.resolve()
        if key in self._entries:
            other = self._entries[key].flag
            raise ValidationError(f"{flag} {path}: the same file as {other}; give each output its own path")
        self._entries[key] = _Entry(path=path, flag=flag)
        return path

    @staticmethod
    def _check_dir_writable(d: Path, flag: str, path: Path) -> None:
        if d.exists() and not _writable_dir(d):
            raise ValidationError(f"{flag} {path}: directory {d} is not writable")

    # ------------------------------------------------------------------ writing
    def write(self, path: Path, writer: Callable[[Path], object]) -> Path:
        """Run ``writer(tmp)`` on a temporary file beside ``path`` (a reserved output)."""
        entry = self._entries.get(Path(path).resolve())
        if entry is None:
            raise ValidationError(f"{path}: not a reserved output")  # a programming error, named anyway
        d = entry.path.parent
        try:
            if not d.exists():
                missing = []
                anc = d
                while not anc.exists():
                    missing.append(anc)
                    anc = anc.parent
                d.mkdir(parents=True, exist_ok=True)
                self._created_dirs.extend(missing)  # deepest first
            fd, name = tempfile.mkstemp(dir=d, prefix=f".{entry.path.name}.", suffix=".tmp" + _suffix(entry.path))
            os.close(fd)
        except OSError as exc:
            raise ValidationError(f"{entry.flag} {entry.path}: cannot write ({exc.strerror or exc})") from None
        if entry.tmp is not None:
            entry.tmp.unlink(missing_ok=True)
        entry.tmp = Path(name)
        try:
            writer(entry.tmp)
        except OSError as exc:
            raise ValidationError(f"{entry.flag} {entry.path}: cannot write ({exc.strerror or exc})") from None
        return entry.path

    def write_text(self, path: Path, text: str) -> Path:
        return self.write(path, lambda tmp: tmp.write_text(text))

    # ------------------------------------------------------------------ end of the run
    def commit(self) -> list[Path]:
        """Rename every written temporary into place; the paths written, in reservation order."""
        done = []
        for e in self._entries.values():
            if e.tmp is None:
                continue
            try:
                os.chmod(e.tmp, 0o666 & ~_umask())
                os.replace(e.tmp, e.path)
            except OSError as exc:
                raise ValidationError(f"{e.flag} {e.path}: cannot write ({exc.strerror or exc})") from None
            e.tmp = None
            done.append(e.path)
        self.committed = True
        return done

    def abort(self) -> None:
        """Delete the temporaries (and the directories this run created, if left empty)."""
        for e in self._entries.values():
            if e.tmp is not None:
                e.tmp.unlink(missing_ok=True)
                e.tmp = None
        for d in self._created_dirs:
            try:
                d.rmdir()
            except OSError:
                pass
        self._created_dirs.clear()

    def __enter__(self) -> "OutputSet":
        return self

    def __exit__(self, *exc) -> None:
        self.abort()


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


__all__ = ["OutputSet"]
