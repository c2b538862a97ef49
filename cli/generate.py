"""``pcdata generate ...``: make built-in data (Pythia 8 + FastJet jets, parametrised showers)."""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import fail, handle_errors

app = typer.Typer(help="Generate built-in data in the public file layouts.", no_args_is_help=True)


# -- showers (parametrised calorimeter showers in the CaloChallenge layout) ----------------------


@app.command("showers")
@handle_errors
def showers(
    # A plain string checked here, not a click choice, so a bad value gives the one-line
    # "error: ..." and exit 2 of every pcdata error (as for `jets --process`).
    geometry: str = typer.Option(..., "--geometry", "-g", help="CaloChallenge binning: ds1-photons, ds1-pions, ds2 or ds3."),
    num_showers: int = typer.Option(..., "--num-showers", "-n", help="Number of showers to generate."),
    out: Path = typer.Option(..., "--out", "-o", help="The CaloChallenge HDF5 file to write (replaced if it exists)."),
    seed: int = typer.Option(0, "--seed", help="Seed; the same seed and --num-showers give the same file for any --workers."),
    workers: int = typer.Option(1, "--workers", "-w", help="Worker processes."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Generate GFlash-style parametrised showers (incident_energies [N, 1], showers [N, voxels], MeV)."""
    from pcdata.generate.showers import generate_showers
    from pcdata.geometry.calo import GEOMETRY_NAMES

    # Option checks here, so the one-line message names the flag the user typed.
    if geometry not in GEOMETRY_NAMES:
        fail(f"--geometry: expected one of {', '.join(GEOMETRY_NAMES)}, got {geometry!r}")
    if num_showers < 1:
        fail(f"--num-showers must be at least 1, got {num_showers}")
    if workers < 1:
        fail(f"--workers must be at least 1, got {workers}")
    if seed < 0:
        fail(f"--seed must be non-negative, got {seed}")
    result = generate_showers(out, geometry=geometry, num_showers=num_showers, seed=seed, workers=workers,
                              progress=not quiet)
    typer.echo(f"wrote {result.path}: {result.num_showers:,} {result.geometry} showers "
               f"in {result.seconds:.1f} s ({result.showers_per_second:,.0f} showers/s)")


# -- jets (Pythia 8 + FastJet, in the JetNet layout) ---------------------------------------------


@app.command("jets")
@handle_errors
def jets(
    # Plain strings/ints checked by the library, not click choices: a bad value then gives the
    # one-line "error: ..." and exit 2 of every pcdata error instead of click's usage box.
    process: str = typer.Option(..., "--process", "-p", help="Jet class: top, g (gluon), q (light quark), qcd (g and q, c, b), w or z; written into the file."),
    num_jets: int = typer.Option(..., "--num-jets", "-n", help="Number of jets to generate."),
    out: Path = typer.Option(..., "--out", "-o", help="The JetNet HDF5 file to write, e.g. t30.hdf5 (replaced if it exists)."),
    num_particles: int = typer.Option(30, "--num-particles", "-P", help="Constituents kept per jet: 30 or 150."),
    seed: int = typer.Option(0, "--seed", help="Seed; the same seed and --num-jets give the same file for any --workers."),
    workers: int = typer.Option(1, "--workers", "-w", help="Worker processes."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Generate ~1 TeV jets with Pythia 8 + FastJet (anti-kT R=0.8) in the JetNet HDF5 layout."""
    import time

    from pcdata.generate.jets import generate_jets

    start = time.perf_counter()
    path = generate_jets(out, process=process, num_jets=num_jets, num_particles=num_particles, seed=seed,
                         workers=workers, progress=not quiet)
    seconds = time.perf_counter() - start
    typer.echo(f"wrote {path}: {num_jets:,} {process} jets, {num_particles} particles "
               f"in {seconds:.1f} s ({num_jets / seconds:,.0f} jets/s)")
