"""What every command shares: turning library errors into one line on stderr and exit code 2."""

from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

import typer

from pcdata.errors import PcdataError

__all__ = ["handle_errors", "fail", "run_app"]

F = TypeVar("F", bound=Callable)


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` on stderr and exit."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def run_app(app: typer.Typer, name: str) -> None:
    """Run a Typer app as a console command, with a usage error (unknown option, bad choice,
    missing argument) as one ``error:`` line and exit code 2, as every other bad input."""
    try:
        from typer._click import exceptions as click  # typer >= 0.26 carries its own click
        from typer.exceptions import Abort
    except ImportError:  # pragma: no cover - older typer runs on click itself
        from click import exceptions as click
        from click.exceptions import Abort

    command = typer.main.get_command(app)
    _plain_flags(command)
    try:
        code = command.main(prog_name=name, standalone_mode=False)
    except click.NoArgsIsHelpError as err:
        err.show()  # the help, as click prints it
        sys.exit(2)
    except click.UsageError as err:
        where = err.ctx.command_path + ": " if err.ctx is not None else ""
        message = err.format_message().replace("Value error, ", "")
        typer.echo(f"error: {where}{message} (see --help)", err=True)
        sys.exit(2)
    except click.ClickException as err:  # e.g. a file option that cannot be opened
        typer.echo(f"error: {err.format_message()}", err=True)
        sys.exit(2)
    except Abort:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def _plain_flags(command) -> None:
    """Show on/off options as plain flags in the help (``--quiet``), not ``--quiet <bool>``: typer
    labels every option with its type, flags included, unless the option has a metavar."""
    for param in getattr(command, "params", ()):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    made = command.get_help_option  # --help is made per context, outside ``params``

    def get_help_option(ctx, _made=made):
        option = _made(ctx)
        if option is not None and option.metavar is None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        _plain_flags(sub)


def _os_error_line(err: OSError) -> str:
    """``path: reason`` of an ``OSError`` (h5py's carry only a message)."""
    reason = err.strerror or str(err)
    reason = reason.splitlines()[0] if reason else type(err).__name__
    return f"{err.filename}: {reason}" if err.filename else reason


def _option_flags(func: Callable) -> dict[str, str]:
    """``{python parameter: its long flag}`` of a Typer command function."""
    import inspect

    flags = {}
    for name, param in inspect.signature(func).parameters.items():
        decls = getattr(param.default, "param_decls", None) or ()
        long = [d for d in decls if d.startswith("--")]
        if long and isinstance(param.default, typer.models.OptionInfo):
            flag = long[0].split("/")[0]
            flags[name] = flag
            flags.setdefault(flag[2:].replace("-", "_"), flag)  # the library's name when the CLI's differs (fmt: --format)
    return flags


def handle_errors(func: F) -> F:
    """Decorator: a :class:`PcdataError` becomes one line on stderr and exit code 2.

    The library names its Python parameters (``num_jets: ...``); a message that starts with the
    name of one of the command's options is shown with the option's flag (``--num-jets: ...``),
    here and nowhere else."""
    flags = _option_flags(func)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except PcdataError as err:
            line = str(err).splitlines()[0] if str(err) else type(err).__name__
            name, sep, rest = line.partition(": ")
            fail(f"{flags[name]}: {rest}" if sep and name in flags else line)
        except OSError as err:
            # The file system refused (missing directory, read-only, full disk, permissions):
            # the user's environment, not a bug, so one line naming the path.
            fail(_os_error_line(err))
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
