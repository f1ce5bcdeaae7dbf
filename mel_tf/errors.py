"""How an error becomes one line: every program and library message uses these.

`one_line` is a program's own error line (`program: error: ...`): all of the
message, its whitespace collapsed. `first_line` quotes another library's error
inside a message of ours: only its first line (TensorFlow's and LiteRT's run on
for pages).
"""

from __future__ import annotations


def _text(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror + (f": {e.filename}" if e.filename else "")
    return str(getattr(e, "message", None) or e).strip()


def one_line(e: BaseException) -> str:
    """All of an exception's message on one line (never a traceback)."""
    return " ".join(_text(e).split()) or type(e).__name__


def first_line(e: BaseException) -> str:
    """The first line of an exception's message, to quote inside another message."""
    lines = _text(e).splitlines()
    return lines[0].strip() if lines else type(e).__name__
