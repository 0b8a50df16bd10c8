"""Reading what a sweep is given or finds on disk, within limits: the sweep file, and the
sweep.json of a sweep folder (a run folder's files are read by engine/runs/reader.py, bounded alike),
both through engine/files.py.

Either may be hostile or broken: a FIFO (an open that blocks forever), a device (a read that
never ends), a file of many MB, or nesting deeper than Python's recursion limit. Each is refused
before it is read: the sweep file with a one-line SweepError naming it and the limit, a sweep
folder's sweep.json by being skipped, as a damaged one is.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from engine.errors import one_line
from engine.files import NotReadable, read_regular
from engine.sweep.parse import check_shape, toml_parser
from engine.sweep.spec import SweepError

MAX_SWEEP_FILE_BYTES = 1 << 20       # a sweep file is a few KB; parsing 50 MB of TOML takes minutes
MAX_JSON_BYTES = 16 << 20            # a sweep folder's sweep.json: the spec, as large as its file


def is_regular(path: str | os.PathLike) -> bool:
    """Whether `path` is a regular file (following links), without opening it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def load_sweep_file(path: str | os.PathLike) -> dict:
    """The raw dict of a .toml, .yaml or .yml sweep file; SweepError with one line if unreadable."""
    path = Path(path)
    try:
        text = read_regular(path, MAX_SWEEP_FILE_BYTES).decode("utf-8")
    except NotReadable as exc:
        raise SweepError(f"cannot read the sweep file {str(path)!r}: {exc}; a sweep file is a "
                         f"regular .toml, .yaml or .yml file of at most {MAX_SWEEP_FILE_BYTES:,} bytes") from None
    except OSError as exc:
        raise SweepError(f"cannot read the sweep file {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SweepError(f"sweep file {path.name!r} is not UTF-8 text (byte {exc.start}); save it "
                         "as UTF-8") from None
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            data = _yaml(text, path)
        elif suffix == ".toml":
            try:
                data = toml_parser().loads(text)
            except ValueError as exc:          # tomllib.TOMLDecodeError is a ValueError
                raise SweepError(f"{path.name} is not valid TOML: {one_line(exc)}") from None
        else:
            raise SweepError(f"sweep file {path.name!r} is not allowed; it must end in .toml, "
                             ".yaml or .yml")
    except RecursionError:                     # both parsers recurse once per nesting level
        raise SweepError(f"{path.name} nests lists or tables deeper than Python's recursion "
                         "limit; a sweep file needs a few levels") from None
    if not isinstance(data, dict):
        raise SweepError(f"{path.name} must hold tables such as [sweep], [base], [grid], [random]")
    check_shape(data, path.name)
    return data


def _yaml(text: str, path: Path):
    try:
        import yaml
    except ImportError:
        raise SweepError("YAML sweep files need PyYAML: pip install pyyaml, or write the "
                         "sweep as TOML") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SweepError(f"{path.name} is not valid YAML: {one_line(exc)}") from None


def read_json_object(path: Path, limit: int = MAX_JSON_BYTES) -> dict | None:
    """A JSON object, or None for a file that is absent or unusable in any way (readers skip it):
    not a regular file, over `limit` bytes, not UTF-8 JSON, nested past the recursion limit, or
    not an object."""
    try:
        data = json.loads(read_regular(path, limit).decode("utf-8"))
    except (OSError, NotReadable, ValueError, RecursionError):   # UnicodeDecodeError is a ValueError
        return None
    return data if isinstance(data, dict) else None
