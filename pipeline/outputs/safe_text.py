"""Data on its way out: text that cannot attack the terminal or the spreadsheet it lands in.

Names, user agents, file names and notes come from deliveries and analysts, so they may
hold anything. Three things go wrong when such text is printed or exported as it is:

- **Terminal control.** ESC sequences clear the screen, rewrite earlier lines or plant
  OSC-8 hyperlinks; other C0/C1 controls move the cursor; bidi overrides (U+202E) make
  a name read backwards. :func:`visible` shows every such character as an escape
  (``\\x1b``, ``\\u202e``), so the reader sees that it is there and what it is. Rich
  passes ESC through as it is (it strips only bell, backspace, VT, FF and CR), so this is
  done here, by Unicode category (stdlib ``unicodedata``): controls (Cc), format
  characters (Cf: bidi controls, zero-width characters), lone surrogates (Cs: undecodable
  file names, which would otherwise end in a UnicodeEncodeError) and line or paragraph
  separators (Zl, Zp).
- **Rich markup.** ``[/]`` in a name ends in a ``MarkupError``, ``[@click=...]`` is taken
  as markup and dropped. :func:`text` makes a :class:`rich.text.Text` (never parsed as
  markup); :func:`markup` escapes (``rich.markup.escape``) for a place inside markup.
  :func:`console` makes consoles that do not turn ``:name:`` into emoji either.
- **Formula cells.** A CSV cell starting ``=``, ``+``, ``-``, ``@``, tab or carriage
  return is run as a formula by spreadsheets (OWASP, "CSV Injection"); :func:`csv_cell`
  and :func:`neutralise_frame` give it a leading apostrophe. Apply them to text only:
  numbers we format ourselves (a score, a negative z) stay numbers.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, Final

from rich.console import Console
from rich.markup import escape
from rich.text import Text

if TYPE_CHECKING:  # polars is imported by the one function that needs it: CLI start-up
    import polars as pl

UNSAFE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""Unicode categories never printed as they are (see the module docstring)."""

FORMULA_START: Final = r"^[=+\-@\t\r]"
"""A cell a spreadsheet would run: OWASP's list of leading characters."""

_FORMULA = re.compile(FORMULA_START)


def _shown(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: object, *, newlines: bool = False) -> str:
    """``str(value)`` with every control, format, surrogate or separator character
    replaced by its escape (ESC becomes the four characters ``\\x1b``). ``newlines=True``
    keeps line feeds (for multi-line messages such as a settings error)."""
    s = str(value)
    if s.isascii() and s.isprintable():  # the common case, quickly
        return s
    return "".join(
        ch
        if (newlines and ch == "\n") or unicodedata.category(ch) not in UNSAFE_CATEGORIES
        else _shown(ch)
        for ch in s
    )


def markup(value: object) -> str:
    """``value`` made :func:`visible` and escaped, for a place inside a rich markup string."""
    return escape(visible(value))


def text(value: object, style: str = "", *, newlines: bool = False) -> Text:
    """``value`` as a rich ``Text`` (never parsed as markup), made :func:`visible`."""
    return Text(visible(value, newlines=newlines), style=style)


def line(*parts: str | Text | tuple[str, str]) -> Text:
    """One printed line from parts: a ``str`` is data (made :func:`visible`), a
    ``(literal, style)`` pair and a ``Text`` are ours, used as given."""
    out = Text()
    for part in parts:
        if isinstance(part, Text):
            out.append_text(part)
        elif isinstance(part, tuple):
            out.append(part[0], style=part[1])
        else:
            out.append(visible(part))
    return out


def console(*, stderr: bool = False, soft_wrap: bool = False) -> Console:
    """A console for the CLI: no ``:emoji:`` codes replaced inside data."""
    return Console(stderr=stderr, soft_wrap=soft_wrap, emoji=False)


def csv_cell(value: str) -> str:
    """A text cell a spreadsheet would run as a formula, with a leading apostrophe."""
    return f"'{value}" if _FORMULA.match(value) else value


def neutralise_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """:func:`csv_cell` on every text column of ``frame`` (numbers are left as they are)."""
    import polars as pl

    return frame.with_columns(
        pl.when(pl.col(c).str.contains(FORMULA_START))
        .then(pl.lit("'") + pl.col(c))
        .otherwise(pl.col(c))
        .alias(c)
        for c, t in frame.schema.items()
        if t == pl.String
    )
