"""Tests of pcdata.geometry.calo: the CaloChallenge binnings against the official XML files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from pcdata.geometry.calo import GEOMETRY_NAMES, CaloGeometry, get_geometry

DATA = Path(__file__).resolve().parents[2] / "pcdata" / "geometry" / "data"
XML = {
    "ds1-photons": "binning_dataset_1_photons.xml",
    "ds1-pions": "binning_dataset_1_pions.xml",
    "ds2": "binning_dataset_2.xml",
    "ds3": "binning_dataset_3.xml",
}


def _xml_layers(name: str) -> list[tuple[int, list[float], int]]:
    """(id, r_edges, n_alpha) per <Layer>, parsed with a regex: independent of the module's parser."""
    text = (DATA / XML[name]).read_text()
    out = []
    for m in re.finditer(r'<Layer\s+id="(\d+)"\s+r_edges="([^"]*)"\s+n_bin_alpha="(\d+)"', text):
        out.append((int(m.group(1)), [float(v) for v in m.group(2).split(",")], int(m.group(3))))
    return sorted(out)


def _expected_cells(name: str) -> np.ndarray:
    """The official voxel order written out as loops: layer, then angle, then radius fastest."""
    cells = []
    for layer, edges, n_alpha in _xml_layers(name):
        if len(edges) == 1:  # r_edges="0": not read out
            continue
        for a in range(n_alpha):
            for r in range(len(edges) - 1):
                cells.append((layer, a, r))
    return np.array(cells, dtype=np.int64)


@pytest.mark.parametrize("name, n_voxels", [("ds1-photons", 368), ("ds1-pions", 533), ("ds2", 6480), ("ds3", 40500)])
def test_voxel_counts(name, n_voxels):
    g = get_geometry(name)
    assert g.n_voxels == n_voxels
    assert len(_expected_cells(name)) == n_voxels  # the XML files themselves say so
    assert int(g.layer_sizes.sum()) == n_voxels


@pytest.mark.parametrize("name", GEOMETRY_NAMES)
def test_voxel_order_matches_the_xml_files(name):
    g = get_geometry(name)
    np.testing.assert_array_equal(g.voxel_cells, _expected_cells(name))
    layers = _xml_layers(name)
    assert g.n_layers == len(layers)
    for layer, edges, n_alpha in layers:
        assert g.n_alpha[layer] == n_alpha
        if len(edges) == 1:
            assert g.layer_sizes[layer] == 0 and g.r_edges[layer] == ()
        else:
            np.testing.assert_array_equal(g.r_edges_of(layer), edges)


@pytest.mark.parametrize("name", GEOMETRY_NAMES)
def test_index_round_trip_both_ways(name):
    g = get_geometry(name)
    idx = np.arange(g.n_voxels)
    layer, alpha, r = g.voxel_to_cell(idx)
    np.testing.assert_array_equal(g.cell_to_voxel(layer, alpha, r), idx)
    cells = _expected_cells(name)
    np.testing.assert_array_equal(g.cell_to_voxel(cells[:, 0], cells[:, 1], cells[:, 2]), idx)
    # vectorised over any shape
    two_d = idx[: 2 * (g.n_voxels // 2)].reshape(2, -1)
    l2, a2, r2 = g.voxel_to_cell(two_d)
    assert l2.shape == two_d.shape
    np.testing.assert_array_equal(g.cell_to_voxel(l2, a2, r2), two_d)


def test_regular_datasets_have_the_published_binning():
    ds2, ds3 = get_geometry("ds2"), get_geometry("ds3")
    assert ds2.shape == (45, 16, 9) and ds3.shape == (45, 50, 18)
    for layer in range(45):
        np.testing.assert_allclose(ds2.r_edges_of(layer), 4.65 * np.arange(10), rtol=0, atol=1e-9)
        np.testing.assert_allclose(ds3.r_edges_of(layer), 2.325 * np.arange(19), rtol=0, atol=1e-9)
    # reshape to (N, layers, alpha, r) is the voxel order
    grid = np.arange(ds2.n_voxels).reshape(ds2.shape)
    assert ds2.voxel_to_cell(grid[7, 3, 5])[0] == 7
    assert tuple(int(v) for v in ds2.voxel_to_cell(grid[7, 3, 5])) == (7, 3, 5)


def test_dataset1_layers_with_one_and_many_angle_bins():
    g = get_geometry("ds1-photons")
    assert g.active_layers == (0, 1, 2, 3, 12)
    assert [g.n_alpha[i] for i in g.active_layers] == [1, 10, 10, 1, 1]
    assert not g.is_regular
    with pytest.raises(ValueError, match="irregular"):
        g.shape
    assert get_geometry("ds1-pions").active_layers == (0, 1, 2, 3, 12, 13, 14)
    # one angle bin: centre 0; ten: midpoints of linspace(-pi, pi, 11)
    np.testing.assert_allclose(g.alpha_centres_of(0), [0.0], atol=1e-15)
    e = np.linspace(-np.pi, np.pi, 11)
    np.testing.assert_allclose(g.alpha_centres_of(1), (e[1:] + e[:-1]) / 2)
    np.testing.assert_allclose(g.r_centres_of(3), [25, 75, 150, 300, 500])


def test_per_voxel_centres_and_edges():
    g = get_geometry("ds2")
    v = g.cell_to_voxel(4, 3, 2)
    assert g.voxel_r_edges[v].tolist() == pytest.approx([9.3, 13.95])
    assert g.voxel_r_centre[v] == pytest.approx(11.625)
    lo = -np.pi + 3 * 2 * np.pi / 16
    assert g.voxel_alpha_edges[v].tolist() == pytest.approx([lo, lo + 2 * np.pi / 16])
    assert g.voxel_alpha_centre[v] == pytest.approx(lo + np.pi / 16)
    with pytest.raises(ValueError):
        g.voxel_r_centre[0] = 1.0  # shared tables are read-only


@pytest.mark.parametrize("name", GEOMETRY_NAMES)
def test_locate_finds_each_voxel_at_its_centre(name):
    g = get_geometry(name)
    np.testing.assert_array_equal(g.locate(g.voxel_layer, g.voxel_alpha_centre, g.voxel_r_centre), np.arange(g.n_voxels))


def test_locate_outside_is_minus_one():
    g = get_geometry("ds1-photons")
    assert g.locate([4], [0.0], [1.0]).tolist() == [-1]  # layer 4 is not read out
    assert g.locate([0], [0.0], [600.0]).tolist() == [-1]  # at the last edge
    assert g.locate([-1, 24], [0.0, 0.0], [1.0, 1.0]).tolist() == [-1, -1]
    assert g.locate([1], [np.pi], [1.0]).tolist() == [g.cell_to_voxel(1, 0, 0)]  # pi wraps to -pi


def test_bad_cells_and_names_are_refused():
    g = get_geometry("ds2")
    with pytest.raises(IndexError, match=r"layer 45, alpha_bin 0, r_bin 0"):
        g.cell_to_voxel([0, 45], [0, 0], [0, 0])
    with pytest.raises(IndexError, match="out of range"):
        g.voxel_to_cell([6480])
    with pytest.raises(ValueError, match="ds1-photons, ds1-pions, ds2, ds3"):
        get_geometry("ds4")
    assert get_geometry(g) is g and get_geometry("ds2") is g  # cached, one instance


def test_from_xml_reads_any_binning_file(tmp_path):
    p = tmp_path / "b.xml"
    p.write_text('<Bins><Bin pid="11" name="electron">'
                 '<Layer id="1" r_edges="0,1,3" n_bin_alpha="4"/><Layer id="0" r_edges="0" n_bin_alpha="1"/>'
                 "</Bin></Bins>")
    g = CaloGeometry.from_xml(p)
    assert (g.name, g.pid, g.n_layers, g.n_voxels, g.active_layers) == ("b", 11, 2, 8, (1,))
    p.write_text('<Bins><Bin pid="11"><Layer id="0" r_edges="0,1" n_bin_alpha="1"/>'
                 '<Layer id="2" r_edges="0,1" n_bin_alpha="1"/></Bin></Bins>')
    with pytest.raises(ValueError, match="layer ids"):
        CaloGeometry.from_xml(p)
