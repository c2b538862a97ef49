"""``pcdata generate ...``: make built-in data (Pythia 8 + FastJet jets, parametrised showers)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Generate built-in data in the public file layouts.", no_args_is_help=True)
