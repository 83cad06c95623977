"""The ``items`` lists of TopCat's cart calls, parsed into typed values.

``POST cartItems`` sends ``"investigation 2, datafile 1"``; ``DELETE cartItems`` sends the same,
bare cart-item ids (``"12, 13"``) or ``*``. TopCat splits on commas and blanks and silently
skips what it does not understand (a leading blank turns a pair into a skipped triple, an
unknown type becomes a datafile); here every piece either parses or is refused with its
position, so a client learns of its mistake instead of an unchanged cart.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from cairn.downloads.model import ENTITY_TYPES
from cairn.errors import IcatError, bad_parameter

#: The most pieces one request may name: a cart larger than this is a mistake or an attack,
#: and each item costs a catalogue look-up.
MAX_ITEMS = 100_000

#: ICAT ids are Java longs.
_MAX_ID = 2**63 - 1

_PIECES = re.compile(r"[^,]*")
_ID = re.compile(r"[0-9]+", re.ASCII)


@dataclass(frozen=True)
class Removal:
    """What ``DELETE cartItems`` asks to remove: everything, or these entities and these
    cart items (a request may mix both, as TopCat allows)."""

    all: bool = False
    pairs: list[tuple[str, int]] = field(default_factory=list)
    item_ids: list[int] = field(default_factory=list)


def parse_items(text: str | None, limit: int = MAX_ITEMS) -> list[tuple[str, int]]:
    """``"investigation 2, Datafile 1"`` -> ``[("investigation", 2), ("datafile", 1)]``.

    Entity types are case-insensitive; blanks around pieces and empty pieces (a trailing
    comma) are ignored; a repeated pair is kept once, where it first appears.
    """
    pairs: list[tuple[str, int]] = []
    for n, piece, words in _pieces(text, limit):
        if len(words) != 2:
            raise _bad(n, piece, "expected an entity type and an id, as in 'dataset 12'")
        pairs.append(_pair(n, piece, words))
    return list(dict.fromkeys(pairs))


def parse_removal(text: str | None, limit: int = MAX_ITEMS) -> Removal:
    """``*`` (the whole cart), ``type id`` pairs, bare cart-item ids, or a mix of the last two."""
    if text is not None and text.strip() == "*":
        return Removal(all=True)
    pairs: list[tuple[str, int]] = []
    item_ids: list[int] = []
    for n, piece, words in _pieces(text, limit):
        if len(words) == 2:
            pairs.append(_pair(n, piece, words))
        elif len(words) == 1:
            if words[0] == "*":
                raise _bad(n, piece, "'*' (the whole cart) must be the only item")
            item_ids.append(_id(n, piece, words[0]))
        else:
            raise _bad(n, piece, "expected a cart-item id or an entity type and an id, "
                                 "as in '12' or 'dataset 12'")
    return Removal(pairs=list(dict.fromkeys(pairs)), item_ids=list(dict.fromkeys(item_ids)))


def _pieces(text: str | None, limit: int) -> Iterator[tuple[int, str, list[str]]]:
    """The non-empty comma-separated pieces as (1-based number, piece, its words); lazy so an
    oversized list is refused before it is all split."""
    if text is None:
        raise bad_parameter("items is required: a comma-separated list such as "
                            "'investigation 2, datafile 1'")
    n = 0
    for m in _PIECES.finditer(text):
        piece = m.group().strip()
        if not piece:
            continue
        n += 1
        if n > limit:
            raise bad_parameter(f"items: too many; at most {limit} may be given in one request",
                                n - 1)
        yield n, piece, piece.split()


def _pair(n: int, piece: str, words: list[str]) -> tuple[str, int]:
    entity_type = words[0].lower()
    if entity_type not in ENTITY_TYPES:
        raise _bad(n, piece, f"unknown entity type {words[0]!r}; expected one of "
                             + ", ".join(ENTITY_TYPES))
    return entity_type, _id(n, piece, words[1])


def _id(n: int, piece: str, word: str) -> int:
    # Length first: int() of thousands of digits is slow, and refused past 4300.
    if len(word) > 19 or not _ID.fullmatch(word) or int(word) > _MAX_ID:
        raise _bad(n, piece, f"{word!r} is not an id (a whole number from 0 to {_MAX_ID})")
    return int(word)


def _bad(n: int, piece: str, why: str) -> IcatError:
    """Names the piece as a person counts (item 3) and locates it for machines (offset 2)."""
    return bad_parameter(f"items: item {n} ({piece!r}): {why}", n - 1)
