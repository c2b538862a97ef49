"""The two Typer applications, ``pcdata`` and ``pcmodels``: parse, call the library, report."""
