"""MSN-style emoticon codes and the images the web client renders for them."""

from __future__ import annotations

__all__ = ["EMOTICONS", "tokenize", "table"]

# code -> (image name under /emoticons/, label).  Codes are matched case-insensitively, longest first.
EMOTICONS = {
    ":)": ("smile", "Smile"), ":-)": ("smile", "Smile"), ":D": ("grin", "Big grin"), ":-D": ("grin", "Big grin"),
    ";)": ("wink", "Wink"), ";-)": ("wink", "Wink"), ":(": ("sad", "Sad"), ":-(": ("sad", "Sad"),
    ":P": ("tongue", "Tongue out"), ":-P": ("tongue", "Tongue out"), ":O": ("surprised", "Surprised"),
    ":'(": ("crying", "Crying"), ":@": ("angry", "Angry"), "(H)": ("hot", "Hot"), "(L)": ("heart", "Heart"),
    "(U)": ("broken", "Broken heart"), "(Y)": ("yes", "Thumbs up"), "(N)": ("no", "Thumbs down"),
    "(*)": ("star", "Star"), "(8)": ("note", "Music note"), "(C)": ("coffee", "Coffee"), "(F)": ("rose", "Rose"),
    "(K)": ("kiss", "Kiss"), "(S)": ("moon", "Sleeping moon"), "(#)": ("sun", "Sun"), "(pi)": ("pizza", "Pizza"),
}

_CODES = sorted(EMOTICONS, key=len, reverse=True)
_UPPER = {c.upper(): c for c in _CODES}


def tokenize(text: str) -> list[tuple[str, str]]:
    """Split text into ("text", s) and ("emoticon", image) parts, longest code first."""
    out: list[tuple[str, str]] = []
    buf = []
    i = 0
    while i < len(text):
        for code in _CODES:
            # Compare slices of `text` itself: upper-casing the whole text shifts indexes ("ß" -> "SS").
            if text[i:i + len(code)].upper() == code.upper():
                if buf:
                    out.append(("text", "".join(buf)))
                    buf = []
                out.append(("emoticon", EMOTICONS[code][0]))
                i += len(code)
                break
        else:
            buf.append(text[i])
            i += 1
    if buf:
        out.append(("text", "".join(buf)))
    return out


def table() -> list[dict]:
    """The table the client fetches (`GET /api/emoticons`), longest code first."""
    return [{"code": c, "image": f"/emoticons/{EMOTICONS[c][0]}.svg", "label": EMOTICONS[c][1]} for c in _CODES]
