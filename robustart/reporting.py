"""Tables of results: plain text for the terminal, Markdown and CSV for files, and a
self-contained HTML page with tables and figures."""

from __future__ import annotations

import base64
import csv
import html
import io
import os
from collections.abc import Sequence
from pathlib import Path

from robustart.errors import ConfigError


def _check_row_lengths(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """ConfigError unless every row has one cell per header (a cell would be dropped or
    shifted under another column)."""
    for number, row in enumerate(rows, 1):
        if len(row) != len(headers):
            raise ConfigError(
                f"table row {number} has {len(row)} cells for {len(headers)} columns "
                f"({', '.join(map(str, headers))})"
            )


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A fixed-width text table; floats are printed with one decimal.

    Example:
        >>> print(format_table(["run", "acc"], [["a", 91.25]]))
        run   acc
        ---  ----
        a    91.2
    """
    _check_row_lengths(headers, rows)
    if not headers:
        return ""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        first = values[0].ljust(widths[0])
        rest = [v.rjust(w) for v, w in zip(values[1:], widths[1:])]
        return "  ".join([first, *rest]).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table."""
    _check_row_lengths(headers, rows)
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def csv_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """CSV text with full-precision numbers."""
    _check_row_lengths(headers, rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(headers)
    writer.writerows(rows)
    return buffer.getvalue()


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


# ----------------------------------------------------------------------------- HTML
def html_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """An HTML ``<table>`` (text escaped; floats with one decimal, ``None`` as ``-``)."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_figure(path: str | os.PathLike, caption: str) -> str:
    """A ``<figure>`` holding the PNG at ``path`` inline (base64), so the page stands alone."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def html_page(title: str, blocks: Sequence[str]) -> str:
    """A self-contained HTML page: ``title`` as heading, then the HTML ``blocks`` in order."""
    style = (
        "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:90%;margin:1em 0}"
        "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "th:first-child,td:first-child{text-align:left}"
        "figure{margin:1.5em 0}img{max-width:100%}figcaption{color:#444;font-size:90%}"
    )
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
        + "\n".join(blocks)
        + "</body></html>\n"
    )
