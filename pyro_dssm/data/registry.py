"""Named corpora and file formats: ``--data NAME`` or ``--data PATH`` resolved through a registry.

A dataset is one function registered with :func:`register_dataset`: it takes the name it was
asked for, its options (a dataclass of its own, an *option group*, filled from the run config's
``data_options``) and the run's data folder, seed and logger, and returns a
:class:`~pyro_dssm.data.Corpus`. Files and folders go through :func:`register_format` entries,
tried in order. A *transform* (:func:`register_transform`, e.g. irregular sampling) changes any
corpus after loading, with an option group of its own. The built-in entries are in
:mod:`pyro_dssm.data.catalog`; a new corpus is one function there (or in your own module) plus
its tests::

    @dataclass(frozen=True)
    class MyOptions:
        "My sensor logs."  # the docstring's first line titles the group in --help

        window: int = field(default=32, metadata={"help": "samples per training sequence"})

    @register_dataset("mydata", options=MyOptions, description="my sensor logs (local files)")
    def _mydata(name, opts, *, data_root, seed, log):
        return load_my_logs(data_root, window=opts.window, seed=seed)

Every field of an option group is a flag of ``pyro-dssm train`` (``--window 64``) and a key of
a config's ``data_options`` mapping (``data_options: {window: 64}``); option names are unique
across groups. An option group validates its values in ``__post_init__``. ``pyro-dssm train
--help`` lists the registered names under ``--data`` and each group's flags under its title.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

__all__ = ["DatasetEntry", "FormatEntry", "register_dataset", "register_format", "register_transform",
           "list_datasets", "dataset_entry", "load_corpus", "apply_transforms", "dataset_options", "option_groups",
           "option_fields", "option_default", "check_data_options"]


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


@dataclass(frozen=True)
class TransformEntry:
    """A change to any corpus after loading: ``fn(corpus, options, *, seed) -> Corpus``.

    ``training_only``: an augmentation of the training data (e.g. key transposition), which a
    trained model's evaluation on another corpus leaves out."""

    fn: Callable[..., Any]
    options: type
    training_only: bool = False


_DATASETS: Dict[str, DatasetEntry] = {}
_FORMATS: List[FormatEntry] = []
_TRANSFORMS: List[TransformEntry] = []
_OPTIONS: Dict[str, type] = {}  # option name -> the option group (dataclass) declaring it


def _register_options(options: Optional[type]) -> None:
    """Record ``options``' fields; a name another group already declares is refused (one flag each)."""
    if options is None:
        return
    if not dataclasses.is_dataclass(options):
        raise TypeError(f"options must be a dataclass, got {options!r}")
    for f in dataclasses.fields(options):
        owner = _OPTIONS.get(f.name)
        if owner is not None and owner is not options:
            raise ValueError(f"data option {f.name!r} of {options.__name__} is already declared by {owner.__name__}; "
                             "option names are unique across groups (each is one flag)")
    for f in dataclasses.fields(options):
        _OPTIONS[f.name] = options


def register_dataset(name: str, *, options: Optional[type] = None, aliases=(), prefix: bool = False,
                     description: str = "", pattern: Optional[str] = None):
    """Decorator registering a corpus loader under ``name`` (and ``aliases``; ``prefix``: ``NAME-...`` too)."""

    def deco(fn):
        for key in (name, *aliases):
            if key in _DATASETS:
                raise ValueError(f"dataset {key!r} is already registered")
        _register_options(options)
        entry = DatasetEntry(name, fn, options, tuple(aliases), prefix, description, pattern)
        for key in (name, *aliases):
            _DATASETS[key] = entry
        return fn

    return deco


def register_format(description: str, match: Callable[[Path], bool], *, options: Optional[type] = None):
    """Decorator registering a loader for files or folders that ``match`` (tried in registration order)."""

    def deco(fn):
        _register_options(options)
        _FORMATS.append(FormatEntry(description, match, fn, options))
        return fn

    return deco


def register_transform(options: type, *, training_only: bool = False):
    """Decorator registering ``fn(corpus, opts, *, seed) -> Corpus``, applied to every corpus after loading
    (and after ``max_sequences``), in registration order. It should return ``corpus`` itself when its
    options are at their defaults. ``training_only``: it augments the training data and is left out
    when a trained model is evaluated on another corpus (:func:`apply_transforms` ``training=False``)."""

    def deco(fn):
        _register_options(options)
        _TRANSFORMS.append(TransformEntry(fn, options, training_only))
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


def option_groups() -> List[type]:
    """Every registered option group (dataclass), datasets' and formats' first, then transforms'."""
    _catalog()
    seen: List[type] = []
    for cls in _OPTIONS.values():
        if cls not in seen:
            seen.append(cls)
    return seen


def option_fields() -> Dict[str, Tuple[type, dataclasses.Field]]:
    """``{option name: (its group, its dataclass field)}`` over every registered group."""
    _catalog()
    return {f.name: (cls, f) for cls in option_groups() for f in dataclasses.fields(cls)}


def option_default(name: str) -> Any:
    """The default of the data option ``name`` (``KeyError`` for an unknown one)."""
    cls, f = option_fields()[name]
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def dataset_options(options: Optional[type], values: Mapping[str, Any]) -> Any:
    """An ``options`` dataclass filled from ``values`` (a run config's ``data_options``): the entries
    naming its fields; the others keep their defaults."""
    if options is None:
        return None
    names = {f.name for f in dataclasses.fields(options)}
    return options(**{k: v for k, v in values.items() if k in names})


def check_data_options(values: Mapping[str, Any], where: str = "config") -> Dict[str, Any]:
    """``values`` checked: every name a registered option, every group valid (its ``__post_init__``).

    Returns:
        The same entries with each value as its group holds it (``"3e-3"`` read as a float).

    Raises:
        ValueError: an unknown option name (listing the known ones), or a value its group refuses.
    """
    known = option_fields()
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown data option(s) {unknown}; the registered datasets take "
                         f"{sorted(known)} (pyro_dssm.data.registry)")
    out = dict(values)
    for cls in option_groups():
        opts = dataset_options(cls, values)
        for k in values:
            if known[k][0] is cls:
                out[k] = getattr(opts, k)
    return out


def _warn_unused(data: str, used: Tuple[Optional[type], ...], values: Mapping[str, Any]) -> None:
    """A warning naming the options, set to other than their defaults, that ``data``'s loader and the
    transforms do not read (``--seq-len 20 --data bach``)."""
    names = {f.name for cls in used if cls is not None for f in dataclasses.fields(cls)}
    names |= {f.name for t in _TRANSFORMS for f in dataclasses.fields(t.options)}
    unused = sorted(k for k, v in values.items() if k not in names and v != option_default(k))
    if unused:
        warnings.warn(f"data option(s) {unused} do not apply to --data {data!r} and are ignored", stacklevel=3)


def apply_transforms(corpus, values: Mapping[str, Any], *, seed: int = 0, training: bool = True):
    """``corpus`` after every registered transform, each with its options from ``values``
    (``training=False``: without the training-only augmentations)."""
    _catalog()
    for t in _TRANSFORMS:
        if t.training_only and not training:
            continue
        corpus = t.fn(corpus, dataset_options(t.options, values), seed=seed)
    return corpus


def load_corpus(data: str, values: Optional[Mapping[str, Any]] = None, *, data_root=None, seed: int = 0, log=None):
    """The corpus ``data`` names: a registered corpus, else a file or folder of a registered format.

    Args:
        data: a corpus name (:func:`list_datasets`) or a path.
        values: the data options (a run config's ``data_options``); the loader gets its own group
            filled from them, and options it does not read are named in a warning.

    Raises:
        FileNotFoundError: neither a registered corpus nor an existing file or folder.
        ValueError: a file or folder of no registered format.
    """
    values = dict(values or {})
    entry = dataset_entry(data)
    if entry is not None:
        _warn_unused(data, (entry.options,), values)
        return entry.loader(data, dataset_options(entry.options, values), data_root=data_root, seed=seed, log=log)
    path = Path(data)
    if not path.exists():
        for fmt in _FORMATS:  # a file named by its format's suffix: its loader says what is missing
            if fmt.match(path):
                return fmt.loader(path, dataset_options(fmt.options, values), seed=seed, log=log)
    if path.exists():
        for fmt in _FORMATS:
            if fmt.match(path):
                _warn_unused(data, (fmt.options,), values)
                return fmt.loader(path, dataset_options(fmt.options, values), seed=seed, log=log)
        raise ValueError(f"don't know how to read {data!r}: use "
                         + ", ".join(f.description for f in _FORMATS))
    raise FileNotFoundError(f"data {data!r} is neither a known corpus ({', '.join(list_datasets())}) nor an "
                            "existing file or folder")
