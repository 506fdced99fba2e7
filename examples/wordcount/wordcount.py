"""wordcount: a sample job processor for pman, written the way ChRIS plugins are.

    python3 wordcount.py [options] [inputdir] outputdir

With two directories it is a ``ds`` plugin (it reads ``inputdir``); with only
``outputdir`` it is an ``fs`` plugin, and reads the directory given with ``--dir`` if any
(pfcon's request replaces the value of ``--dir`` with ``/share/incoming``). It counts the
lines, words and characters of every text file found under its input (files that are not
UTF-8 text are skipped and reported), prints what it finds, and writes to ``outputdir``:

``counts.tsv``     one line per file (lines, words, characters) and a total
``words.tsv``      every word and how often it occurs, most frequent first
``summary.json``   the totals, the skipped files and the most frequent words

``--saveinputmeta`` and ``--saveoutputmeta`` also write ``input.meta.json`` (the options
it ran with) and ``output.meta.json`` (what the program is), as ChRIS plugins do. Like
them it expects ``outputdir`` to exist (in a pman job pod, the stage-in creates it).
Standard library only. Exit codes: 0 done, 1 an input or output problem, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

VERSION = "1.0.0"
# Letters, with inner apostrophes or hyphens ("don't", "well-known"); digits are not words.
WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")


@dataclass
class FileCount:
    path: str
    lines: int
    words: int
    characters: int


@dataclass
class Tally:
    files: list[FileCount] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    words: Counter[str] = field(default_factory=Counter)

    def add(self, path: str, text: str) -> FileCount:
        found = [word.lower() for word in WORD.findall(text)]
        self.words.update(found)
        count = FileCount(path, len(text.splitlines()), len(found), len(text))
        self.files.append(count)
        return count


class Failure(Exception):
    """A problem with the input or output directory: one line for the user, exit code 1."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wordcount",
        usage="%(prog)s [options] [inputdir] outputdir",
        description="Count lines, words and characters of the text files of a directory.",
    )
    parser.add_argument("dirs", nargs="+", metavar="[inputdir] outputdir")
    parser.add_argument("--dir", type=Path, help="input directory of an fs run")
    parser.add_argument("--top", type=int, default=10, help="most frequent words shown (10)")
    parser.add_argument("--saveinputmeta", action="store_true", help="write input.meta.json")
    parser.add_argument("--saveoutputmeta", action="store_true", help="write output.meta.json")
    parser.add_argument("--version", action="version", version=f"wordcount {VERSION}")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(args.dirs) > 2:
        parser.error("expected [inputdir] outputdir, got more directories")
    if args.top < 0:
        parser.error("--top must not be negative")
    args.outputdir = Path(args.dirs[-1])
    args.inputdir = Path(args.dirs[0]) if len(args.dirs) == 2 else None
    args.mode = "ds" if args.inputdir else "fs"
    return args


def inputs_of(args: argparse.Namespace) -> list[Path]:
    found = []
    for path in (args.inputdir, args.dir):
        if path is not None and path not in found:
            if not path.is_dir():
                raise Failure(f"input directory {path} does not exist")
            found.append(path)
    return found


def text_files(root: Path) -> list[Path]:
    """Every regular file under ``root``, sorted; links are never followed."""
    files = []
    for directory, subdirs, names in os.walk(root):
        subdirs.sort()
        for name in sorted(names):
            path = Path(directory, name)
            if path.is_file() and not path.is_symlink():
                files.append(path)
    return files


def read_text(path: Path) -> str | None:
    """The file's text, or None when it is not UTF-8 text."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def count(inputs: list[Path]) -> Tally:
    tally = Tally()
    for root in inputs:
        for path in text_files(root):
            name = path.relative_to(root).as_posix()
            text = read_text(path)
            if text is None:
                tally.skipped.append({"path": name, "reason": "not UTF-8 text"})
                print(f"  {name}: skipped (not UTF-8 text)")
                continue
            found = tally.add(name, text)
            print(f"  {name}: {found.lines} lines, {found.words} words, {found.characters} chars")
    return tally


def summary(args: argparse.Namespace, inputs: list[Path], tally: Tally) -> dict:
    return {
        "program": "wordcount",
        "version": VERSION,
        "mode": args.mode,
        "inputs": [str(path) for path in inputs],
        "files": len(tally.files),
        "skipped": tally.skipped,
        "lines": sum(f.lines for f in tally.files),
        "words": sum(f.words for f in tally.files),
        "characters": sum(f.characters for f in tally.files),
        "distinct_words": len(tally.words),
        "top_words": dict(most_common(tally.words, args.top)),
    }


def most_common(words: Counter[str], n: int | None = None) -> list[tuple[str, int]]:
    """Most frequent first, ties in alphabetical order, so the output is reproducible."""
    ranked = sorted(words.items(), key=lambda item: (-item[1], item[0]))
    return ranked if n is None else ranked[:n]


def write_outputs(args: argparse.Namespace, tally: Tally, totals: dict) -> list[str]:
    out = args.outputdir
    rows = ["path\tlines\twords\tcharacters"]
    rows += [f"{f.path}\t{f.lines}\t{f.words}\t{f.characters}" for f in tally.files]
    rows.append(f"TOTAL\t{totals['lines']}\t{totals['words']}\t{totals['characters']}")
    written = {
        "counts.tsv": "\n".join(rows) + "\n",
        "words.tsv": "".join(f"{w}\t{c}\n" for w, c in most_common(tally.words)),
        "summary.json": json.dumps(totals, indent=2) + "\n",
    }
    if args.saveinputmeta:
        options = {k: v for k, v in vars(args).items() if k not in ("dirs", "mode")}
        written["input.meta.json"] = json.dumps(options, indent=2, default=str) + "\n"
    if args.saveoutputmeta:
        meta = {"title": "wordcount", "version": VERSION, "type": args.mode}
        written["output.meta.json"] = json.dumps(meta, indent=2) + "\n"
    for name, text in written.items():
        (out / name).write_text(text, encoding="utf-8")
    return list(written)


def run(argv: list[str]) -> int:
    args = parse_args(argv)
    if not args.outputdir.is_dir():
        raise Failure(f"output directory {args.outputdir} does not exist")
    inputs = inputs_of(args)
    print(f"wordcount {VERSION} ({args.mode}): {', '.join(map(str, inputs)) or 'no input'}")
    tally = count(inputs)
    totals = summary(args, inputs, tally)
    names = write_outputs(args, tally, totals)
    print(
        f"{totals['files']} files, {totals['lines']} lines, {totals['words']} words "
        f"({totals['distinct_words']} different), {totals['characters']} characters"
    )
    if totals["top_words"]:
        top = ", ".join(f"{word} ({n})" for word, n in totals["top_words"].items())
        print(f"most frequent: {top}")
    print(f"wrote {', '.join(names)} to {args.outputdir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except Failure as exc:
        print(f"wordcount: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"wordcount: {exc.filename or ''}: {exc.strerror}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
