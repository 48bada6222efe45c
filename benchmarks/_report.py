"""The report writers of the benchmark scripts: they live in the package (``ghostzoo._report``),
where ``ghostzoo benchmark`` uses them too."""

from ghostzoo._report import markdown_table, save_figure, write_csv

__all__ = ["markdown_table", "save_figure", "write_csv"]
