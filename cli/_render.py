"""Rich rendering of summaries for humans (the JSON forms come from the library)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

__all__ = ["render_store_summary", "print_provenance"]


def _fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x)


def render_store_summary(info: dict) -> None:
    console = Console()
    ppc = info["points_per_cloud"]
    console.print(
        f"[bold]{info['path']}[/bold]  {info['format']} v{info['version']}  kind=[cyan]{info['kind']}[/cyan]  "
        f"coords={info['coords']}  status={info['status']}"
    )
    console.print(
        f"{info['num_clouds']:,} clouds, {info['num_points']:,} points "
        f"(mean {_fmt(ppc['mean'])}, max {_fmt(ppc['max'])} per cloud), {info['num_fragments']} fragments"
    )
    for title, feats in (("point features", info["point_features"]), ("cloud features", info["cloud_features"])):
        table = Table(title=title, title_justify="left")
        for col in ("name", "unit", "dtype", "mean", "std", "min", "max"):
            table.add_column(col, justify="right" if col in ("mean", "std", "min", "max") else "left")
        for f in feats:
            s = info["stats"].get(f["name"], {})
            table.add_row(f["name"], f["unit"], f["dtype"], *(_fmt(s.get(k)) for k in ("mean", "std", "min", "max")))
        console.print(table)
    splits = {k: v for k, v in info["splits"].items() if isinstance(v, dict)}
    console.print("splits (seed %s): " % info["splits"]["seed"]
                  + ", ".join(f"{k} {v['count']:,} ({v['fraction']:g})" for k, v in splits.items()))
    print_provenance(console, info["provenance"])


def print_provenance(console: Console, prov: dict) -> None:
    """Who made a store from what: ``Provenance.to_dict()`` as a few lines."""
    console.print(f"made by {prov['tool']} on {prov['created']} ({prov['user']}@{prov['host']}): {prov['command']}")
    for s in prov["sources"]:
        console.print(f"  source {s['path']}  {s['size']:,} B  sha256 {(s['sha256'] or '-')[:16]}")
