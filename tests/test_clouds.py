import numpy as np
import pyarrow as pa
import pytest

from pcdata import Clouds


def _clouds(n=50, seed=0):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 12, size=n)
    off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Clouds(rng.normal(size=(off[-1], 3)).astype(np.float32), off,
                  {"e": rng.random(n).astype(np.float32), "k": np.arange(n, dtype=np.int32)}, ("a", "b", "c"))


def test_take_matches_per_cloud_slices():
    c = _clouds()
    idx = np.array([5, 0, 49, 5, 17])
    t = c.take(idx)
    for j, i in enumerate(idx):
        np.testing.assert_array_equal(t.cloud(j)["points"], c.points[c.offsets[i]:c.offsets[i + 1]])
        assert t.fields["k"][j] == i


def test_slice_and_concat_round_trip():
    c = _clouds()
    parts = [c.slice(0, 10), c.slice(10, 11), c.slice(11, 50)]
    assert Clouds.concat(parts).equals(c)
    assert len(c.slice(20, 10)) == 0


def test_padded_truncates_and_counts_cut_points():
    c = _clouds()
    p = c.padded(5)
    assert p.points.shape == (50, 5, 3)
    assert p.truncated == int(np.clip(c.counts - 5, 0, None).sum())
    np.testing.assert_array_equal(p.mask.sum(1), np.minimum(c.counts, 5))
    i = int(np.argmax(c.counts))
    np.testing.assert_array_equal(p.points[i], c.cloud(i)["points"][:5])
    assert (p.points[~p.mask] == 0).all()


def test_awkward_and_arrow_views_equal_numpy():
    import awkward as ak

    c = _clouds()
    a = c.to_awkward()
    assert ak.to_list(ak.num(a.points, axis=1)) == c.counts.tolist()
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(a.points.b)), c.points[:, 1])
    t = c.to_arrow()
    assert t.schema.field("a").type == pa.large_list(pa.float32())
    np.testing.assert_array_equal(t.column("c").combine_chunks().offsets.to_numpy(), c.offsets)
    np.testing.assert_array_equal(t.column("e").to_numpy(), c.fields["e"])


def test_inconsistent_buffers_are_rejected():
    with pytest.raises(ValueError, match="offsets end"):
        Clouds(np.zeros((3, 2), np.float32), np.array([0, 2]), {})
    with pytest.raises(ValueError, match="cloud field"):
        Clouds(np.zeros((2, 2), np.float32), np.array([0, 2]), {"x": np.zeros(3)})
