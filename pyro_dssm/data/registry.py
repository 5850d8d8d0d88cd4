"""Named corpora and file formats: ``--data NAME`` or ``--data PATH`` resolved through a registry.

A dataset is one function registered with :func:`register_dataset`: it takes the name it was
asked for, its options (a dataclass of its own, filled from the run config's fields of the same
names) and the run's data folder, seed and logger, and returns a :class:`~pyro_dssm.data.Corpus`.
Files and folders go through :func:`register_format` entries, tried in order. The built-in
entries are in :mod:`pyro_dssm.data.catalog`; a new corpus is one function there (or in your
own module) plus its tests::

    @dataclass(frozen=True)
    class MyOptions:
        window: int = 32

    @register_dataset("mydata", options=MyOptions, description="my sensor logs (local files)")
    def _mydata(name, opts, *, data_root, seed, log):
        return load_my_logs(data_root, window=opts.window, seed=seed)

``pyro-dssm train --help`` lists the registered names under ``--data``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = ["DatasetEntry", "FormatEntry", "register_dataset", "register_format", "list_datasets", "dataset_entry",
           "load_corpus", "dataset_options"]


@dataclass(frozen=True)
class DatasetEntry:
    """A registered corpus: ``loader(name, options, *, data_root, seed, log) -> Corpus``."""

    name: str
    loader: Callable[..., Any]
    options: Optional[type] = None
    aliases: Tuple[str, ...] = ()
    prefix: bool = False  # also answers to NAME-SUFFIX (e.g. flame-p3, librispeech-dev-clean)
    description: str = ""
    pattern: Optional[str] = None  # how listings show it (default: the name, NAME-... for a prefix entry)

    @property
    def shown(self) -> str:
        return self.pattern or (f"{self.name}-..." if self.prefix else self.name)


@dataclass(frozen=True)
class FormatEntry:
    """A file or folder format: ``match(path) -> bool`` and ``loader(path, options, *, seed, log) -> Corpus``."""

    description: str
    match: Callable[[Path], bool]
    loader: Callable[..., Any]
    options: Optional[type] = None


_DATASETS: Dict[str, DatasetEntry] = {}
_FORMATS: List[FormatEntry] = []


def register_dataset(name: str, *, options: Optional[type] = None, aliases=(), prefix: bool = False,
                     description: str = "", pattern: Optional[str] = None):
    """Decorator registering a corpus loader under ``name`` (and ``aliases``; ``prefix``: ``NAME-...`` too)."""

    def deco(fn):
        for key in (name, *aliases):
            if key in _DATASETS:
                raise ValueError(f"dataset {key!r} is already registered")
        entry = DatasetEntry(name, fn, options, tuple(aliases), prefix, description, pattern)
        for key in (name, *aliases):
            _DATASETS[key] = entry
        return fn

    return deco


def register_format(description: str, match: Callable[[Path], bool], *, options: Optional[type] = None):
    """Decorator registering a loader for files or folders that ``match`` (tried in registration order)."""

    def deco(fn):
        _FORMATS.append(FormatEntry(description, match, fn, options))
        return fn

    return deco


def _catalog() -> None:
    from . import catalog  # noqa: F401  (registers the built-in entries on import)


def list_datasets() -> List[str]:
    """The registered corpus names (``NAME-...`` for a prefix entry), without aliases, in registration order."""
    _catalog()
    seen: List[str] = []
    for e in _DATASETS.values():
        if e.shown not in seen:
            seen.append(e.shown)
    return seen


def dataset_entry(name: str) -> Optional[DatasetEntry]:
    """The entry answering to ``name`` (exactly, case-insensitively, or as ``PREFIX-...``), or ``None``."""
    _catalog()
    if name in _DATASETS:
        return _DATASETS[name]
    if name.lower() in _DATASETS:
        return _DATASETS[name.lower()]
    for e in _DATASETS.values():
        if e.prefix and name.startswith(e.name + "-"):
            return e
    return None


def dataset_options(options: Optional[type], source: Any) -> Any:
    """An ``options`` dataclass filled from ``source``'s attributes of the same names (the run config);
    fields ``source`` lacks keep their defaults."""
    if options is None:
        return None
    values = {f.name: getattr(source, f.name) for f in dataclasses.fields(options) if hasattr(source, f.name)}
    return options(**values)


def load_corpus(data: str, source: Any, *, data_root=None, seed: int = 0, log=None):
    """The corpus ``data`` names: a registered corpus, else a file or folder of a registered format.

    Args:
        data: a corpus name (:func:`list_datasets`) or a path.
        source: where options come from (the run's :class:`~pyro_dssm.config.TrainConfig`).

    Raises:
        FileNotFoundError: neither a registered corpus nor an existing file or folder.
        ValueError: a file or folder of no registered format.
    """
    entry = dataset_entry(data)
    if entry is not None:
        return entry.loader(data, dataset_options(entry.options, source), data_root=data_root, seed=seed, log=log)
    path = Path(data)
    if not path.exists():
        for fmt in _FORMATS:  # a file named by its format's suffix: its loader says what is missing
            if fmt.match(path):
                return fmt.loader(path, dataset_options(fmt.options, source), seed=seed, log=log)
    if path.exists():
        for fmt in _FORMATS:
            if fmt.match(path):
                return fmt.loader(path, dataset_options(fmt.options, source), seed=seed, log=log)
        raise ValueError(f"don't know how to read {data!r}: use "
                         + ", ".join(f.description for f in _FORMATS))
    raise FileNotFoundError(f"data {data!r} is neither a known corpus ({', '.join(list_datasets())}) nor an "
                            "existing file or folder")
