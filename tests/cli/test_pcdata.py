"""The ``pcdata`` command as users run it: real subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from tests.conftest import run_cli
from tests.store.conftest import fragment_dirs, shard, shard_entries

pytestmark = pytest.mark.distributed


def test_ingest_inspect_export_round_trip(tmp_path, jetnet_files, scheduler):
    out = tmp_path / "s"
    r = run_cli("pcdata", "ingest", "jetnet", *map(str, jetnet_files), "--out", str(out), "--scheduler", scheduler,
                "--rows-per-fragment", "1000", check=True)
    assert "4,000 clouds" in r.stdout
    info = json.loads(run_cli("pcdata", "inspect", str(out), "--json", check=True).stdout)
    for key in ("format", "version", "kind", "coords", "num_clouds", "num_points", "point_features",
                "cloud_features", "splits", "stats"):
        assert key in info
    assert (info["format"], info["version"], info["kind"], info["num_clouds"]) == ("pcdata.pointcloud", 2, "jets", 4000)
    assert [f["name"] for f in info["point_features"]] == ["etarel", "phirel", "ptrel"]
    assert info["splits"]["train"]["count"] + info["splits"]["val"]["count"] + info["splits"]["test"]["count"] == 4000
    human = run_cli("pcdata", "inspect", str(out), check=True).stdout
    assert "4,000 clouds" in human and "ptrel" in human
    run_cli("pcdata", "export", str(out), "--format", "jetnet-hdf5", "--out", str(tmp_path / "t.hdf5"), check=True)
    with h5py.File(tmp_path / "t.hdf5") as f, h5py.File(jetnet_files[0]) as g:
        np.testing.assert_array_equal(f["particle_features"][:3000], g["particle_features"][:])
        np.testing.assert_array_equal(f["jet_features"][:3000], g["jet_features"][:])


def test_compression_none_writes_raw_chunks_with_the_same_content(tmp_path, jetnet_files, scheduler):
    """Raw chunks are the jets' default (they barely compress); lz4 is one option away."""
    stores = {}
    for compression in ("lz4", "none"):
        out = tmp_path / compression
        option = ["--compression", compression] if compression == "lz4" else []
        run_cli("pcdata", "ingest", "jetnet", str(jetnet_files[0]), "--out", str(out), "--scheduler", scheduler,
                *option, "--quiet", check=True)
        stores[compression] = out
    fragment = fragment_dirs(stores["none"])[0]
    codecs = json.loads((fragment / "points" / "zarr.json").read_text())["codecs"][0]["configuration"]["codecs"]
    assert [c["name"] for c in codecs] == ["bytes"]
    raw = sum(f.stat().st_size for f in stores["none"].rglob("c.0*"))
    packed = sum(f.stat().st_size for f in stores["lz4"].rglob("c.0*"))
    assert packed < raw
    views = [json.loads(run_cli("pcdata", "inspect", str(s), "--json", check=True).stdout) for s in stores.values()]
    assert views[0]["stats"] == views[1]["stats"] and views[0]["num_points"] == views[1]["num_points"]


@pytest.mark.parametrize("compression, message", [("lz4", "damaged Blosc chunk 0"), ("none", None)])
def test_a_damaged_chunk_fails_the_export_with_its_file_named(tmp_path, jetnet_files, scheduler, compression, message):
    store = tmp_path / "s"
    run_cli("pcdata", "ingest", "jetnet", str(jetnet_files[0]), "--out", str(store), "--scheduler", scheduler,
            "--compression", compression, "--quiet", check=True)
    chunk = shard(store, 0)
    data = chunk.read_bytes()
    (offset, nbytes), *_ = shard_entries(chunk)
    chunk.write_bytes(data[:offset] + b"x" * nbytes + data[offset + nbytes :])  # a chunk overwritten in place
    out = tmp_path / "x.parquet"
    r = run_cli("pcdata", "export", str(store), "--format", "parquet", "--out", str(out))
    lines = r.stderr.strip().splitlines()
    assert (r.returncode, len(lines)) == (2 if message else 0, 1 if message else 0), r.stderr
    if message:  # raw bytes cannot be told from data; verify's checksums can
        assert lines[0].startswith(f"error: {store}: fragment f000000000: {message}") and lines[0].endswith(f"({chunk})")
    else:
        r = run_cli("pcdata", "verify", str(store))
        assert r.returncode == 1 and r.stderr.strip() == f"{store}: fragment f000000000: checksum mismatch"
    for cut in (data[:100], b""):  # truncated, as by a full disk or an interrupted copy; then gone
        chunk.write_bytes(cut)
        out.unlink(missing_ok=True)
        r = run_cli("pcdata", "export", str(store), "--format", "parquet", "--out", str(out))
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and not out.exists(), r.stderr
        assert lines[0].startswith(f"error: {store}: fragment f000000000: damaged chunk file") and str(chunk) in lines[0]
    chunk.unlink()
    r = run_cli("pcdata", "export", str(store), "--format", "jetnet-hdf5", "--out", str(tmp_path / "x.hdf5"))
    assert r.returncode == 2 and not (tmp_path / "x.hdf5").exists()
    assert r.stderr.strip() == f"error: {store}: fragment f000000000: missing chunk file ({chunk})"


def test_a_second_ingest_into_the_same_out_fails_at_once_naming_the_first(tmp_path, jetnet_files, scheduler):
    import subprocess
    import sys
    import textwrap

    from tests.conftest import REPO

    out = tmp_path / "s"
    # The first ingest, held mid-build: the store exists and is locked by a live process.
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys
        from dataclasses import replace
        from pcdata.store import prepare_store
        from tests.store.conftest import template
        b = prepare_store(sys.argv[1], replace(template("first"), expected_fragments=1), command="pcdata ingest first.hdf5")
        print("locked", flush=True)
        sys.stdin.readline()
        b.close()
    """), str(out)], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = sorted(str(p) for p in out.rglob("*"))
        for extra in ([], ["--overwrite"]):
            r = run_cli("pcdata", "ingest", "jetnet", str(jetnet_files[0]), "--out", str(out), "--scheduler", scheduler,
                        "--quiet", *extra)
            lines = r.stderr.strip().splitlines()
            assert r.returncode == 2 and len(lines) == 1, r.stderr
            assert lines[0].startswith(f"error: {out}: another ingest is writing this store (pid {holder.pid} on ")
            assert "pcdata ingest first.hdf5" in lines[0]
        assert sorted(str(p) for p in out.rglob("*")) == before  # nothing written by the second
    finally:
        holder.communicate("\n", timeout=30)


def test_verify_and_migrate_commands(tmp_path):
    import shutil

    from pcdata import open_store
    from tests.conftest import REPO

    v1 = tmp_path / "v1"
    shutil.copytree(REPO / "tests" / "data" / "store-v1", v1)
    r = run_cli("pcdata", "verify", str(v1), check=True)
    assert r.stdout.strip() == f"ok {v1}: 3 fragments, 300 clouds match their checksums"
    r = run_cli("pcdata", "migrate", str(v1), str(tmp_path / "v2"), check=True)
    assert r.stdout.strip() == f"wrote {tmp_path / 'v2'}: 3 fragments, 300 clouds, format 2"
    assert open_store(tmp_path / "v2").read().equals(open_store(v1).read())
    r = run_cli("pcdata", "migrate", str(v1), str(tmp_path / "v2"))
    assert (r.returncode, r.stderr.strip()) == (2, f"error: {tmp_path / 'v2'}: a store already exists; pass --overwrite to replace it")
    r = run_cli("pcdata", "verify", str(tmp_path / "nope"))
    assert (r.returncode, r.stderr.strip()) == (2, f"error: {tmp_path / 'nope'}: no such store")


def test_rerunning_a_finished_ingest_is_complete_exit_0_and_another_needs_overwrite(tmp_path, jetnet_files, scheduler):
    out = tmp_path / "s"
    argv = ["pcdata", "ingest", "jetnet", str(jetnet_files[0]), "--out", str(out), "--scheduler", scheduler,
            "--rows-per-fragment", "1000"]
    run_cli(*argv, "--quiet", check=True)
    root = out / "zarr.json"
    before = (root.read_bytes(), root.stat().st_mtime_ns, sorted(str(p) for p in out.rglob("*")))
    r = run_cli(*argv, check=True)  # the same inputs and options: nothing to do
    assert f"{out}: already complete (same inputs and options); nothing to do" in r.stderr
    assert "3,000 clouds" in r.stdout and "error" not in r.stderr
    assert (root.read_bytes(), root.stat().st_mtime_ns, sorted(str(p) for p in out.rglob("*"))) == before
    r = run_cli(*argv[:-1], "500", "--quiet")  # other options: a different store, not silently kept
    assert (r.returncode, r.stderr.strip()) == (2, f"error: {out}: a store already exists; pass --overwrite to replace it")


def test_help_shows_flags_as_plain_flags_in_every_command():
    import subprocess
    import sys

    import typer

    from cli.pcdata import app as pcdata_app
    from cli.pcmodels import app as pcmodels_app
    from tests.conftest import REPO

    def leaves(command, path):
        subs = getattr(command, "commands", {})
        yield path
        for name, sub in subs.items():
            yield from leaves(sub, [*path, name])

    argvs = [[prog, *path] for prog, app in (("pcdata", pcdata_app), ("pcmodels", pcmodels_app))
             for path in leaves(typer.main.get_command(app), [])]
    assert len(argvs) > 15
    procs = [(argv, subprocess.Popen([sys.executable, "-m", f"cli.{argv[0]}", *argv[1:], "--help"], cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**__import__("os").environ, "COLUMNS": "200"})) for argv in argvs]
    for argv, proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and "--help" in out, (argv, err)
        assert "<bool>" not in out, (argv, [line for line in out.splitlines() if "<bool>" in line])
