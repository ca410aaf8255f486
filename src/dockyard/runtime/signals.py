"""Signal names and numbers as Docker reads them (moby/sys/signal on Linux).

A name is ``KILL``, ``SIGKILL`` or ``RTMIN+3``; a number is taken as it is, then checked
against the signals Linux delivers to processes (1-31 and the real-time 34-64: glibc
keeps 32 and 33 to itself). Nothing is imported: pyrunc's CLI and the hot commands use it.
"""

from __future__ import annotations

NAMES = {"ABRT": 6, "ALRM": 14, "BUS": 7, "CHLD": 17, "CLD": 17, "CONT": 18, "FPE": 8, "HUP": 1, "ILL": 4,
         "INT": 2, "IO": 29, "IOT": 6, "KILL": 9, "PIPE": 13, "POLL": 29, "PROF": 27, "PWR": 30, "QUIT": 3,
         "SEGV": 11, "STKFLT": 16, "STOP": 19, "SYS": 31, "TERM": 15, "TRAP": 5, "TSTP": 20, "TTIN": 21,
         "TTOU": 22, "URG": 23, "USR1": 10, "USR2": 12, "VTALRM": 26, "WINCH": 28, "XCPU": 24, "XFSZ": 25}
RTMIN, RTMAX = 34, 64
NAMES.update({"RTMIN": RTMIN, "RTMAX": RTMAX})
NAMES.update({f"RTMIN+{i}": RTMIN + i for i in range(1, 16)})
NAMES.update({f"RTMAX-{i}": RTMAX - i for i in range(1, 15)})


class SignalError(ValueError):
    """A signal Docker would refuse, with Docker's words for it."""


def parse(text: "str | int") -> int:
    """The signal's number; SignalError for a name Linux lacks, 0, or a number no process
    can be sent."""
    raw = str(text).strip()
    if raw.lstrip("+-").isdigit():
        number = int(raw)
        if number == 0:
            raise SignalError(f"Invalid signal: {raw}")
    else:
        name = raw.upper()
        number = NAMES.get(name[3:] if name.startswith("SIG") else name, 0)
        if not number:
            raise SignalError(f"Invalid signal: {raw}")
    if not valid(number):
        raise SignalError(f"The linux daemon does not support signal {number}")
    return number


def valid(number: int) -> bool:
    return 1 <= number <= 31 or RTMIN <= number <= RTMAX
