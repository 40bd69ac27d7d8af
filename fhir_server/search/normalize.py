"""Chinese-aware string normalisation for the string index and string queries.

Both sides of a string search pass the same function: Unicode compatibility folding (NFKC:
full-width ``ＡＢＣ１`` → ``ABC1``), accents removed, case folded, Traditional → Simplified
Chinese (OpenCC ``t2s``), white space collapsed. ``pinyin_forms`` gives the full pinyin and
the initials of Chinese text (pypinyin), for the alliance ``name-pinyin`` parameters.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import opencc
from pypinyin import Style, lazy_pinyin

_T2S = opencc.OpenCC("t2s")


@lru_cache(maxsize=65536)
def normalize(text: str) -> str:
    """The comparable form of a string (index and query alike)."""
    folded = unicodedata.normalize("NFKC", text)
    decomposed = unicodedata.normalize("NFD", folded)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    simplified = _T2S.convert(unicodedata.normalize("NFC", stripped))
    return " ".join(simplified.casefold().split())


def has_han(text: str) -> bool:
    return any("\u3400" <= c <= "\u9fff" for c in text)


@lru_cache(maxsize=65536)
def pinyin_forms(text: str) -> tuple[str, ...]:
    """``张三`` → (``zhangsan``, ``zs``); empty for text without Chinese characters."""
    simplified = normalize(text).replace(" ", "")
    if not has_han(simplified):
        return ()
    full = "".join(lazy_pinyin(simplified)).lower()
    initials = "".join(lazy_pinyin(simplified, style=Style.FIRST_LETTER)).lower()
    return (full, initials) if full != initials else (full,)
