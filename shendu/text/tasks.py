"""Generated, seeded sequence-to-sequence tasks and their batching.

``date_pairs``: dates written in many human formats -> ISO ``YYYY-MM-DD`` (the course's
date-normalisation task). ``number_pairs``: integers in digits <-> English words.
``pad_batch`` turns token-id lists into padded tensors for teacher forcing.

>>> from shendu.text.tasks import date_pairs, number_to_words
>>> date_pairs(2, seed=0)  # doctest: +SKIP
[('tuesday 3 may 1979', '1979-05-03'), ...]
>>> number_to_words(342)
'three hundred and forty two'
"""
from __future__ import annotations

import datetime as _dt
import random

import numpy as np

from .. import creation

__all__ = ["date_pairs", "number_pairs", "number_to_words", "pad_batch", "DATE_FORMATS",
           "entity_lines"]

_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december"]
_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def _ordinal(d: int) -> str:
    suffix = "th" if 10 <= d % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(d % 10, "th")
    return f"{d}{suffix}"


# Each format writes a date; two-digit years are read as 1950-2049 (the dates drawn).
DATE_FORMATS = {
    "weekday d month yyyy": lambda x: f"{_DAYS[x.weekday()]} {x.day} {_MONTHS[x.month - 1]} "
                                      f"{x.year}",
    "m/d/yy": lambda x: f"{x.month}/{x.day}/{x.year % 100:02d}",
    "dth of month yyyy": lambda x: f"{_ordinal(x.day)} of {_MONTHS[x.month - 1]} {x.year}",
    "month d, yyyy": lambda x: f"{_MONTHS[x.month - 1]} {x.day}, {x.year}",
    "mon d yyyy": lambda x: f"{_MONTHS[x.month - 1][:3]} {x.day} {x.year}",
    "dd.mm.yyyy": lambda x: f"{x.day:02d}.{x.month:02d}.{x.year}",
    "d month yy": lambda x: f"{x.day} {_MONTHS[x.month - 1]} {x.year % 100:02d}",
    "yyyy/mm/dd": lambda x: f"{x.year}/{x.month:02d}/{x.day:02d}",
    "weekday, month dth yyyy": lambda x: f"{_DAYS[x.weekday()][:3]}, {_MONTHS[x.month - 1]} "
                                         f"{_ordinal(x.day)} {x.year}",
    "mm-dd-yyyy": lambda x: f"{x.month:02d}-{x.day:02d}-{x.year}",
}


def date_pairs(n: int, seed: int = 0, case: bool = True) -> list[tuple[str, str]]:
    """``n`` (human date, ISO date) pairs, dates uniform over 1950-2049, formats uniform;
    ``case`` randomly capitalises words as people write them.

    >>> from shendu.text.tasks import date_pairs
    >>> all(len(t) == 10 and t[4] == "-" for _, t in date_pairs(50, seed=1))
    True
    """
    rng = random.Random(seed)
    start = _dt.date(1950, 1, 1).toordinal()
    span = _dt.date(2049, 12, 31).toordinal() - start
    fmts = list(DATE_FORMATS.values())
    out = []
    for _ in range(n):
        d = _dt.date.fromordinal(start + rng.randint(0, span))
        s = rng.choice(fmts)(d)
        if case and rng.random() < 0.5:
            s = " ".join(w.capitalize() for w in s.split(" "))
        out.append((s, d.isoformat()))
    return out


_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def _below_1000(n: int) -> list[str]:
    words = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
        if n:
            words.append("and")
    if n >= 20:
        words.append(_TENS[n // 10])
        if n % 10:
            words.append(_ONES[n % 10])
    elif n or not words:
        words.append(_ONES[n])
    return words


def number_to_words(n: int) -> str:
    """British English words for 0 <= n < 10**9 (hyphens written as spaces).

    >>> from shendu.text.tasks import number_to_words
    >>> number_to_words(1_000_017), number_to_words(0)
    ('one million and seventeen', 'zero')
    """
    if not 0 <= n < 10**9:
        raise ValueError(f"number_to_words: expected 0 <= n < 10**9, got {n}")
    if n < 1000:
        return " ".join(_below_1000(n))
    words = []
    for scale, name in ((10**6, "million"), (10**3, "thousand")):
        if n >= scale:
            words += _below_1000(n // scale) + [name]
            n %= scale
    if n:
        words += (["and"] if n < 100 else []) + _below_1000(n)
    return " ".join(words)


def number_pairs(n: int, seed: int = 0, max_value: int = 999_999,
                 direction: str = "digits-to-words") -> list[tuple[str, str]]:
    """``n`` pairs of (digits, words) or (words, digits); the number of digits is drawn
    uniformly first, so short and long numbers are equally common.

    >>> from shendu.text.tasks import number_pairs
    >>> number_pairs(1, seed=3, direction="words-to-digits")[0][1].isdigit()
    True
    """
    if direction not in ("digits-to-words", "words-to-digits"):
        raise ValueError(f"number_pairs: direction must be 'digits-to-words' or "
                         f"'words-to-digits', got {direction!r}")
    rng = random.Random(seed)
    top = len(str(max_value))
    out = []
    for _ in range(n):
        k = rng.randint(1, top)
        v = rng.randint(0 if k == 1 else 10 ** (k - 1), min(max_value, 10**k - 1))
        pair = (str(v), number_to_words(v))
        out.append(pair if direction == "digits-to-words" else pair[::-1])
    return out


def pad_batch(seqs: list[list[int]], pad_idx: int = 0, bos: int | None = None,
              eos: int | None = None):
    """Pad id lists to a (B, T) int64 tensor. With ``bos``/``eos``, returns the
    teacher-forcing pair ``(inputs, targets)``: ``<bos> + s`` and ``s + <eos>``.

    >>> from shendu.text.tasks import pad_batch
    >>> x, y = pad_batch([[5, 6], [7]], bos=2, eos=3)
    >>> x.tolist(), y.tolist()
    ([[2, 5, 6], [2, 7, 0]], [[5, 6, 3], [7, 3, 0]])
    """
    if bos is None and eos is None:
        rows = seqs
    else:
        if bos is None or eos is None:
            raise ValueError("pad_batch: give both bos and eos, or neither")
        rows = [[bos] + list(s) for s in seqs] + [list(s) + [eos] for s in seqs]
    if any(len(r) == 0 for r in rows):
        raise ValueError("pad_batch: empty sequence in the batch")
    T = max(len(r) for r in rows)
    arr = np.full((len(rows), T), pad_idx, dtype=np.int64)
    for i, r in enumerate(rows):
        arr[i, :len(r)] = r
    if bos is None:
        return creation.tensor(arr)
    B = len(seqs)
    return creation.tensor(arr[:B]), creation.tensor(arr[B:])


# ---------------------------------------------------------------------- entity tagging
def _speaker_names(text: str) -> list[str]:
    import re
    names = set()
    for m in re.finditer(r"^([A-Z][A-Z]+(?: [A-Z]+)*):$", text, re.M):
        words = [w for w in m.group(1).split() if w not in ("KING", "QUEEN", "DUKE", "LADY",
                                                             "OF", "LORD", "SIR", "II", "III",
                                                             "IV", "VI", "FIRST", "SECOND")]
        if len(words) >= 1 and len(words[0]) > 2:
            names.add(" ".join(w.capitalize() for w in words))
    # headings like ALL, BOTH or SERVANT are common words, not names
    common = set(re.findall(r"\b[a-z]+\b", text))
    return sorted(n for n in names if n.split()[0].lower() not in common)


def entity_lines(n: int, seed: int = 0, text: str | None = None,
                 lines: slice | None = None) -> list[tuple[list[str], list[str]]]:
    """A named-entity task built from real text: ``n`` lines of Shakespeare (the
    speeches, not the speaker headings), each with one to three spans inserted between
    words — a character name (``PER``, from the plays' speaker headings), a date
    (``DATE``) or a number in digits or words (``NUM``) — tagged in BIO. Lines that
    already name a character are left out, so every entity in a line is tagged.

    Args:
        n: lines to make.
        seed: the draw of lines, spans and positions.
        text: the corpus (default: the packaged Shakespeare).
        lines: which slice of the corpus' speech lines to draw from (to keep training and
            held-out lines apart).

    >>> from shendu.text.tasks import entity_lines
    >>> toks, tags = entity_lines(1, seed=0)[0]
    >>> len(toks) == len(tags) and any(t.startswith("B-") for t in tags)
    True
    """
    from .datasets import load_shakespeare
    from .tokenizers import WordTokenizer

    text = load_shakespeare() if text is None else text
    names = _speaker_names(text)
    tok = WordTokenizer(lower=False)
    name_words = {w for nm in names for w in nm.split()}
    # lines already naming a character would hold untagged entities: leave them out
    pool = [ln for ln in text.split("\n") if ln.strip() and not ln.rstrip().endswith(":")
            and not name_words.intersection(tok(ln))]
    pool = pool[lines] if lines is not None else pool
    if not pool or not names:
        raise ValueError("entity_lines: the text has no speech lines or no speaker names")
    rng = random.Random(seed)

    def span(kind: str) -> list[str]:
        if kind == "PER":
            return rng.choice(names).split()
        if kind == "NUM":
            v = rng.randint(2, 99_999)
            return [str(v)] if rng.random() < 0.5 else number_to_words(v).split()
        s, _ = date_pairs(1, seed=rng.randrange(1 << 30), case=False)[0]
        return tok(s)

    out = []
    for _ in range(n):
        words = tok(rng.choice(pool))
        tags = ["O"] * len(words)
        for _ in range(rng.randint(1, 3)):
            kind = rng.choice(["PER", "DATE", "NUM"])
            ent = span(kind)
            # insert only between whole spans (never inside an earlier insertion)
            cuts = [i for i in range(len(words) + 1)
                    if i == len(words) or not tags[i].startswith("I-")]
            at = rng.choice(cuts)
            words[at:at] = ent
            tags[at:at] = [f"B-{kind}"] + [f"I-{kind}"] * (len(ent) - 1)
        out.append((words, tags))
    return out
