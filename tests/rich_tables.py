"""Reading the CLI's rich tables back in tests: rows of cells, wrapped cells joined again."""

from __future__ import annotations


def table_rows(output: str) -> list[list[str]]:
    """Each body row of every table in ``output`` as its cells (header rows included, borders not).

    A cell wrapped over several lines on a narrow terminal comes back as one string: a line whose
    first cell is empty continues the row above it.
    """
    rows: list[list[str]] = []
    for line in output.splitlines():
        if "│" not in line and "┃" not in line:
            continue
        cells = [c.strip() for c in line.replace("┃", "│").split("│")[1:-1]]
        if rows and cells and not cells[0] and len(cells) == len(rows[-1]):
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
        else:
            rows.append(cells)
    return rows


def row_of(output: str, first: str) -> list[str]:
    """The row whose first cell is ``first``."""
    for row in table_rows(output):
        if row and row[0] == first:
            return row
    raise AssertionError(f"no table row starting with {first!r} in:\n{output}")
