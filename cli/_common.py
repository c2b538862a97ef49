"""What every command shares: turning library errors into one line on stderr and exit code 2."""

from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

import typer

from pcdata.errors import PcdataError

__all__ = ["handle_errors", "fail"]

F = TypeVar("F", bound=Callable)


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` on stderr and exit."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def handle_errors(func: F) -> F:
    """Decorator: a :class:`PcdataError` becomes one line on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except PcdataError as err:
            fail(str(err).splitlines()[0] if str(err) else type(err).__name__)
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
