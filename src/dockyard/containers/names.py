"""Container IDs and names: 64-hex IDs, Docker-style random names, and resolution of what a
user typed (full ID, name, unique ID prefix) as Docker's daemon does it."""

from __future__ import annotations

import os
import re

from dockyard.errors import DockyardError, NotFoundError

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from typing import Iterable

VALID_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

# A short slice of Docker's namesgenerator lists.
_LEFT = ("admiring", "adoring", "affectionate", "agitated", "amazing", "angry", "awesome", "blissful",
         "bold", "boring", "brave", "charming", "clever", "cool", "compassionate", "competent", "condescending",
         "confident", "cranky", "crazy", "dazzling", "determined", "distracted", "dreamy", "eager", "ecstatic",
         "elastic", "elated", "elegant", "eloquent", "epic", "fervent", "festive", "flamboyant", "focused",
         "friendly", "frosty", "gallant", "gifted", "goofy", "gracious", "happy", "hardcore", "heuristic",
         "hopeful", "hungry", "infallible", "inspiring", "jolly", "jovial", "keen", "kind", "laughing",
         "loving", "lucid", "magical", "modest", "musing", "mystifying", "naughty", "nervous", "nice",
         "nifty", "nostalgic", "objective", "optimistic", "peaceful", "pedantic", "pensive", "practical",
         "priceless", "quirky", "quizzical", "relaxed", "reverent", "romantic", "sad", "serene", "sharp",
         "silly", "sleepy", "stoic", "strange", "stupefied", "suspicious", "tender", "thirsty", "trusting",
         "unruffled", "upbeat", "vibrant", "vigilant", "vigorous", "wizardly", "wonderful", "xenodochial",
         "youthful", "zealous", "zen")
_RIGHT = ("albattani", "allen", "almeida", "archimedes", "ardinghelli", "babbage", "banach", "bardeen",
          "bartik", "bassi", "bell", "benz", "bhabha", "bohr", "booth", "borg", "bose", "brahmagupta",
          "brown", "burnell", "cannon", "carson", "cerf", "chandrasekhar", "chatelet", "clarke", "colden",
          "cori", "curie", "darwin", "davinci", "dijkstra", "dubinsky", "einstein", "elion", "engelbart",
          "euclid", "euler", "faraday", "feistel", "fermat", "fermi", "feynman", "franklin", "galileo",
          "gates", "goldberg", "goldstine", "golick", "goodall", "hamilton", "hawking", "heisenberg",
          "hermann", "hodgkin", "hoover", "hopper", "hugle", "hypatia", "jackson", "jang", "jennings",
          "jepsen", "johnson", "joliot", "kalam", "kapitsa", "keller", "kepler", "khorana", "kilby",
          "kirch", "knuth", "lalande", "lamarr", "lamport", "leakey", "leavitt", "lederberg", "liskov",
          "lovelace", "lumiere", "mahavira", "mayer", "mccarthy", "mcclintock", "mclean", "meitner",
          "mendel", "merkle", "minsky", "mirzakhani", "morse", "murdock", "napier", "nash", "newton",
          "nobel", "noether", "pare", "pascal", "pasteur", "payne", "perlman", "pike", "poincare",
          "ptolemy", "raman", "ramanujan", "ride", "ritchie", "robinson", "rosalind", "sammet", "shamir",
          "shannon", "shaw", "shockley", "sinoussi", "snyder", "spence", "stonebraker", "swanson",
          "swartz", "tesla", "thompson", "torvalds", "turing", "varahamihira", "visvesvaraya", "volhard",
          "wescoff", "wiles", "williams", "wilson", "wing", "wozniak", "wright", "yalow", "yonath")


# Randomness straight from os.urandom (what ``secrets`` uses): importing secrets and
# random costs ``run`` ~3 ms of start-up for a handful of bytes.

def new_id() -> str:
    """A 64-hex ID that does not look like a number (Docker avoids all-digit short IDs)."""
    while True:
        value = os.urandom(32).hex()
        if not value[:12].isdigit():
            return value


def _below(n: int) -> int:
    """A uniform random integer in [0, n), by rejection (no modulo bias)."""
    limit = (1 << 32) - (1 << 32) % n
    while True:
        value = int.from_bytes(os.urandom(4), "big")
        if value < limit:
            return value % n


def random_name(taken: Iterable[str] = ()) -> str:
    used = set(taken)
    for attempt in range(50):
        name = f"{_LEFT[_below(len(_LEFT))]}_{_RIGHT[_below(len(_RIGHT))]}"
        if attempt > 5:
            name += str(_below(10))
        if name not in used:
            return name
    return f"{_LEFT[_below(len(_LEFT))]}_{_RIGHT[_below(len(_RIGHT))]}{os.urandom(3).hex()}"


def check_name(name: str) -> str:
    """The name without its optional leading ``/``; Docker's rule for the characters."""
    if not VALID_NAME.match(name):
        raise DockyardError(f'Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed',
                            exit_code=125)
    return name.lstrip("/")


class NoSuchContainer(NotFoundError):
    pass


def resolve(typed: str, entries: Iterable[tuple[str, str]]) -> str:
    """The ID ``typed`` names among (id, name) pairs: a full ID, then a name, then a unique
    ID prefix, in Docker's order."""
    entries = list(entries)
    key = typed.lstrip("/") if typed.startswith("/") else typed
    for cid, _ in entries:
        if cid == key:
            return cid
    for cid, name in entries:
        if name == key:
            return cid
    if key and re.fullmatch(r"[0-9a-f]+", key):
        matches = [cid for cid, _ in entries if cid.startswith(key)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise DockyardError(f"multiple IDs found with provided prefix: {key}")
    raise NoSuchContainer(f"No such container: {typed}")
