"""Recorded English speech that can be had offline: Debian's ``asterisk-core-sounds-en-g722``.

About 25 minutes of studio-recorded 16 kHz wideband prompts by one speaker
(Allison Smith), CC-BY-SA-3.0, stored as raw G.722 at 64 kbit/s. This module
decodes them (the ``g722`` package from PyPI) into 16-bit FLAC files that
:func:`~pyro_dssm.data.speech.load_speech_folder` reads.

``scripts/make_speech_corpus.py`` builds the demo corpus in
``data_home()/asterisk-en`` from the Debian package, and writes the handful of
clips shipped in ``pyro_dssm/data/assets/speech`` (:data:`SHIPPED_CLIPS`).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from .corpus import data_home

__all__ = ["DEB_PACKAGE", "SHIPPED_CLIPS", "decode_g722", "is_speech_prompt", "convert_g722_tree",
           "extract_deb", "asterisk_corpus_dir", "load_asterisk"]

DEB_PACKAGE = "asterisk-core-sounds-en-g722"
SOUNDS = "usr/share/asterisk/sounds/en_US_f_Allison"
COPYRIGHT = f"usr/share/doc/{DEB_PACKAGE}/copyright"
SAMPLE_RATE = 16000

#: the prompts shipped inside the package for tests (about 13.5 s of speech in all)
SHIPPED_CLIPS = ("confbridge-lock-in", "confbridge-mute-out", "something-terribly-wrong", "vm-deleted",
                 "vm-helpexit", "vm-nomore")

# tones, beeps, silences and a monkey: not speech
_NOT_SPEECH = re.compile(r"(^|/)(silence/|beep|.*tone|tt-monkeys)")


def _g722():
    try:
        import G722
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("decoding G.722 needs the g722 package: pip install \"pyro-dssm[audio]\"") from e
    return G722


def decode_g722(data: bytes) -> np.ndarray:
    """Raw G.722 (64 kbit/s) bytes -> int16 samples at 16 kHz."""
    if not data:
        raise ValueError("empty G.722 stream")
    return np.asarray(_g722().G722(SAMPLE_RATE, 64000).decode(data), dtype=np.int16)


def is_speech_prompt(relpath: str) -> bool:
    """False for the package's tones, beeps and silences."""
    return not _NOT_SPEECH.search(relpath)


def convert_g722_tree(src: Union[str, os.PathLike], out: Union[str, os.PathLike],
                      names: Optional[Sequence[str]] = None) -> List[Path]:
    """Decode every speech ``*.g722`` under ``src`` (or only ``names``, stems without suffix) to FLAC in ``out``.

    Folders are kept (``digits/1.g722`` -> ``out/digits/1.flac``). Returns the written paths.
    """
    import soundfile

    src, out = Path(src), Path(out)
    files = sorted(p for p in src.rglob("*.g722") if is_speech_prompt(p.relative_to(src).as_posix()))
    if names is not None:
        by_stem: Dict[str, Path] = {p.relative_to(src).with_suffix("").as_posix(): p for p in files}
        missing = sorted(set(names) - set(by_stem))
        if missing:
            raise FileNotFoundError(f"{src} lacks the prompt(s) {missing}")
        files = [by_stem[n] for n in names]
    if not files:
        raise FileNotFoundError(f"no .g722 speech prompts under {src}")
    written = []
    for p in files:
        target = out / p.relative_to(src).with_suffix(".flac")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp.flac")
        soundfile.write(str(tmp), decode_g722(p.read_bytes()), SAMPLE_RATE, subtype="PCM_16")
        os.replace(tmp, target)
        written.append(target)
    return written


def extract_deb(deb: Optional[Union[str, os.PathLike]], workdir: Union[str, os.PathLike]) -> Path:
    """Unpack the Debian package (downloading it with ``apt-get download`` when ``deb`` is None); returns the root."""
    workdir = Path(workdir)
    if deb is None:
        try:
            subprocess.run(["apt-get", "download", DEB_PACKAGE], cwd=workdir, check=True)
        except (OSError, subprocess.CalledProcessError) as e:
            raise RuntimeError(
                f"could not download {DEB_PACKAGE} with apt-get ({e}). On a Debian/Ubuntu machine run "
                f"`apt-get download {DEB_PACKAGE}` yourself and pass the .deb with --deb, or pass an unpacked "
                "copy with --sounds") from e
        debs = sorted(workdir.glob(f"{DEB_PACKAGE}_*.deb"))
        if not debs:
            raise RuntimeError(f"apt-get download left no {DEB_PACKAGE}_*.deb in {workdir}")
        deb = debs[-1]
    root = workdir / "unpacked"
    subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    return root


def asterisk_corpus_dir(root: Optional[Union[str, os.PathLike]] = None) -> Path:
    """``ROOT/asterisk-en`` with ROOT the data home (``$PYRO_DSSM_DATA`` or ``~/.cache/pyro-dssm``)."""
    return Path(root or data_home()) / "asterisk-en"


def load_asterisk(root: Optional[Union[str, os.PathLike]] = None, **kw):
    """The demo speech corpus built by ``scripts/make_speech_corpus.py`` (a :class:`SpeechCorpus`)."""
    from .speech import load_speech_folder

    folder = asterisk_corpus_dir(root)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"the asterisk speech corpus is not at {folder}. Build it with `python scripts/make_speech_corpus.py` "
            f"(it fetches Debian's {DEB_PACKAGE}; offline, pass --deb FILE.deb), or pass --data-root FOLDER "
            "holding asterisk-en/.")
    kw.setdefault("name", "asterisk-en")
    return load_speech_folder(folder, **kw)
