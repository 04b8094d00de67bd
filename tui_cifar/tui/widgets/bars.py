"""Top-k class probabilities as a small table of horizontal bars."""

from __future__ import annotations

from rich.bar import Bar
from rich.table import Table


def topk_table(top: list[tuple[str, float]], bar_width: int = 20) -> Table:
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False, expand=False)
    table.add_column("class", no_wrap=True)
    table.add_column("probability", width=bar_width, no_wrap=True)
    table.add_column("", justify="right", no_wrap=True)
    for rank, (name, prob) in enumerate(top):
        color = "green" if rank == 0 else "cyan"
        table.add_row(
            f"[b]{name}[/b]" if rank == 0 else name,
            Bar(size=1.0, begin=0.0, end=max(0.0, min(1.0, float(prob))), width=bar_width, color=color),
            f"{100 * prob:5.1f}%",
        )
    return table
