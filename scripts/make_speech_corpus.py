#!/usr/bin/env python
"""Build the offline speech corpus from Debian's asterisk-core-sounds-en-g722 (CC-BY-SA-3.0).

Examples::

    python scripts/make_speech_corpus.py                   # apt-get download, decode -> ~/.cache/pyro-dssm/asterisk-en
    python scripts/make_speech_corpus.py --deb sounds.deb  # from a downloaded .deb
    python scripts/make_speech_corpus.py --shipped         # rewrite the clips in pyro_dssm/data/assets/speech
    python scripts/make_speech_corpus.py --shipped --check # verify the shipped clips against the package

The corpus (about 21 minutes of one speaker's prompts, tones and beeps left out)
is then trained on with ``--data asterisk``; ``--data speech`` uses the shipped clips.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--deb", help="the downloaded asterisk-core-sounds-en-g722_*.deb (default: apt-get download)")
    src.add_argument("--sounds", help="an unpacked folder of .g722 prompts (e.g. .../sounds/en_US_f_Allison)")
    p.add_argument("--out", help="output folder (default: DATA_HOME/asterisk-en; with --shipped the package assets)")
    p.add_argument("--shipped", action="store_true", help="only the few clips shipped with the package")
    p.add_argument("--check", action="store_true", help="with --shipped: compare instead of writing")
    args = p.parse_args(argv)
    if args.check and not args.shipped:
        p.error("--check applies to --shipped")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np
    import soundfile

    from pyro_dssm.data.asterisk import (COPYRIGHT, SHIPPED_CLIPS, SOUNDS, asterisk_corpus_dir, convert_g722_tree,
                                         extract_deb)
    from pyro_dssm.data.speech import SHIPPED_SPEECH

    with tempfile.TemporaryDirectory() as tmp:
        try:
            if args.sounds:
                sounds, copyright_file = Path(args.sounds), None
            else:
                root = extract_deb(args.deb, tmp)
                sounds, copyright_file = root / SOUNDS, root / COPYRIGHT
            out = Path(args.out) if args.out else (SHIPPED_SPEECH if args.shipped else asterisk_corpus_dir())
            names = SHIPPED_CLIPS if args.shipped else None
            target = Path(tmp) / "converted" if args.check else out
            written = convert_g722_tree(sounds, target, names)
        except (FileNotFoundError, RuntimeError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if args.check:
            bad = []
            for w in written:
                shipped = out / w.relative_to(target)
                if not shipped.is_file() or not np.array_equal(soundfile.read(str(w), dtype="int16")[0],
                                                               soundfile.read(str(shipped), dtype="int16")[0]):
                    bad.append(shipped.name)
            if bad:
                print(f"error: shipped clips differ from the package: {bad}", file=sys.stderr)
                return 1
            print(f"{len(written)} shipped clips match {sounds}")
            return 0
        if copyright_file is not None and copyright_file.is_file():
            shutil.copyfile(copyright_file, out / "COPYRIGHT-debian.txt")
    seconds = sum(soundfile.info(str(w)).duration for w in written)
    print(f"wrote {len(written)} FLAC files ({seconds / 60:.1f} min) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
