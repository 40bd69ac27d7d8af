"""Chinese national identifiers: check characters and consistency rules.

- Resident identity card number, GB 11643-1999: 17 digits + check character.
- Unified social credit code, GB 32100-2015: 17 characters + check character.
"""

from __future__ import annotations

import re
from datetime import date

ID_CARD_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CARD_CHECK = "10X98765432"
ID_CARD = re.compile(r"[0-9]{17}[0-9X]")
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
USCC = re.compile(f"[{USCC_ALPHABET}]{{18}}")


def id_card_check(first17: str) -> str:
    """The check character of a resident ID number's first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, ID_CARD_WEIGHTS, strict=True))
    return ID_CARD_CHECK[total % 11]


def id_card_valid(number: str) -> bool:
    return bool(ID_CARD.fullmatch(number)) and id_card_check(number[:17]) == number[17]


def id_card_birth_date(number: str) -> date | None:
    """The birth date inside a resident ID number, or None if it is not a real date."""
    try:
        return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return None


def uscc_check(first17: str) -> str:
    """The check character of a unified social credit code's first 17 characters."""
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def uscc_valid(code: str) -> bool:
    return bool(USCC.fullmatch(code)) and uscc_check(code[:17]) == code[17]
