import numpy as np
import pytest

from pcdata.errors import StoreFormatError
from pcdata.store.format import SplitSpec
from pcdata.store.splits import RANK, THRESHOLD, split_cuts, split_indices, split_member, split_sizes, splitmix64

_GOLDEN, _MASK = 0x9E3779B97F4A7C15, (1 << 64) - 1


def test_splitmix64_matches_the_reference_generator():
    # splitmix64 seeded with 0: its first output is the finaliser of the golden-ratio increment.
    assert int(splitmix64(np.array([_GOLDEN], dtype=np.uint64))[0]) == 0xE220A8397B1DCDAF


def _py_splitmix64(x: int) -> int:
    z = x & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def _py_keys(n: int, seed: int) -> list[int]:
    return [_py_splitmix64(i + seed * _GOLDEN) for i in range(n)]


@pytest.mark.parametrize("method", [RANK, THRESHOLD])
def test_splits_partition_every_cloud_and_depend_on_the_seed_only(method):
    a = split_indices(10_001, SplitSpec(seed=1, method=method))
    assert np.array_equal(np.sort(np.concatenate(list(a.values()))), np.arange(10_001))
    assert all(np.all(np.diff(v) > 0) for v in a.values())
    b = split_indices(10_001, SplitSpec(seed=1, method=method))
    c = split_indices(10_001, SplitSpec(seed=2, method=method))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])


def test_rank_splits_have_exact_sizes():
    spec = SplitSpec(method=RANK)
    parts = split_indices(10_001, spec)
    assert {k: len(v) for k, v in parts.items()} == split_sizes(10_001, spec) == {"train": 7000, "val": 1500, "test": 1501}


def test_rank_assignment_equals_a_pure_python_reimplementation():
    # Machine independence: plain Python integers give the same ranking as the numpy code.
    n, seed = 500, 7
    keys = _py_keys(n, seed)
    order = sorted(range(n), key=lambda i: keys[i])
    spec = SplitSpec(seed=seed, method=RANK)
    sizes = split_sizes(n, spec)
    got = split_indices(n, spec)
    assert got["train"].tolist() == sorted(order[: sizes["train"]])
    assert got["test"].tolist() == sorted(order[sizes["train"] + sizes["val"]:])


def test_threshold_assignment_equals_a_pure_python_reimplementation():
    # A cloud is in the first split whose cumulative fraction times 2**64 exceeds its key.
    n, seed = 3000, 11
    spec = SplitSpec((("train", 0.6), ("val", 0.25), ("test", 0.15)), seed=seed, method=THRESHOLD)
    cuts = [int(0.6 * 2.0**64), int((0.6 + 0.25) * 2.0**64)]
    want = {"train": [], "val": [], "test": []}
    for i, k in enumerate(_py_keys(n, seed)):
        want["train" if k < cuts[0] else "val" if k < cuts[1] else "test"].append(i)
    got = split_indices(n, spec)
    assert {k: v.tolist() for k, v in got.items()} == want
    assert split_sizes(n, spec) == {k: len(v) for k, v in want.items()}


def test_threshold_membership_needs_no_store_wide_pass_and_ignores_the_store_size():
    # The same cloud is in the same split of a store of 1000 clouds and of one of 10**12:
    # appending never moves a cloud, and a cloud's split is known from its index alone.
    spec = SplitSpec(seed=3)
    small = split_cuts(1000, spec)
    assert small == split_cuts(10**12, spec)
    ids = np.array([0, 5, 999, 123_456_789_012], dtype=np.int64)
    member = {k: split_member(ids, spec.seed, c) for k, c in small.items()}
    assert np.all(sum(m.astype(int) for m in member.values()) == 1)
    parts = split_indices(1000, spec)
    for k in parts:
        assert member[k][:3].tolist() == [int(i) in set(parts[k].tolist()) for i in ids[:3]]


def test_threshold_sizes_are_binomial_around_the_fractions():
    n = 200_000
    sizes = split_sizes(n, SplitSpec())
    for name, frac in SplitSpec().fractions:
        sigma = (n * frac * (1 - frac)) ** 0.5
        assert abs(sizes[name] - n * frac) < 5 * sigma, (name, sizes[name])


def test_rank_key_cuts_reproduce_the_rank_splits_through_membership():
    n, spec = 4321, SplitSpec(seed=9, method=RANK)
    ids = np.arange(n)
    for name, cut in split_cuts(n, spec).items():
        np.testing.assert_array_equal(ids[split_member(ids, spec.seed, cut)], split_indices(n, spec)[name])


def test_an_empty_split_and_an_empty_store():
    spec = SplitSpec((("train", 1.0), ("test", 0.0)))
    assert split_sizes(777, spec) == {"train": 777, "test": 0}
    assert {k: len(v) for k, v in split_indices(0, spec).items()} == {"train": 0, "test": 0}
    assert split_sizes(0, SplitSpec(method=RANK)) == {"train": 0, "val": 0, "test": 0}


def test_an_unknown_split_method_is_refused():
    with pytest.raises(StoreFormatError, match="unknown method 'splitmix64-v0'"):
        SplitSpec(method="splitmix64-v0")
    with pytest.raises(StoreFormatError, match="unknown split method"):
        SplitSpec.from_dict({"fractions": {"train": 1.0}, "seed": 1, "method": "other"})


def test_split_sizes_equal_exact_decimal_arithmetic():
    # 90 x 0.7 is 62.999... in floats: the rank cut must still be 63, as exact arithmetic gives.
    from fractions import Fraction

    for fractions in ((("train", 0.7), ("val", 0.15), ("test", 0.15)), (("train", 0.8), ("val", 0.1), ("test", 0.1)),
                      (("a", 0.6), ("b", 0.3), ("c", 0.1)), (("train", 0.55), ("test", 0.45))):
        spec = SplitSpec(fractions, method=RANK)
        for n in range(1, 2001):
            acc, cuts = Fraction(0), [0]
            for i, (_, f) in enumerate(fractions):
                acc += Fraction(str(f))
                cuts.append(n if i == len(fractions) - 1 else int(acc * n))  # int() floors a positive Fraction
            expected = {name: cuts[i + 1] - cuts[i] for i, (name, _) in enumerate(fractions)}
            assert split_sizes(n, spec) == expected, (fractions, n)
    assert split_sizes(90, SplitSpec((("train", 0.7), ("test", 0.3)), method=RANK))["train"] == 63


def test_splitmix64_takes_any_integer_input_and_wraps_without_a_warning():
    want = [_py_splitmix64(v) for v in (0, 1, 2**63 + 5, _MASK)]
    assert splitmix64([0, 1, 2**63 + 5, _MASK]).tolist() == want  # Python ints, beyond int64 too
    assert splitmix64(np.array([0, 1], dtype=np.int64)).tolist() == want[:2]
    assert int(splitmix64(np.uint64(2**63 + 5))) == want[2]  # a scalar: no overflow warning (errors here)


@pytest.mark.parametrize("method", [RANK, THRESHOLD])
def test_the_first_split_starts_at_key_zero_and_the_last_ends_past_every_key(method):
    # With seed 0, cloud 0 has key splitmix64(0) = 0: the smallest key belongs to the first split.
    spec = SplitSpec(seed=0, method=method)
    cuts = split_cuts(100, spec)
    assert cuts["train"][0] == 0 and cuts["test"][1] == 1 << 64
    assert int(split_member(np.array([0]), 0, cuts["train"])[0]) == 1
    assert 0 in split_indices(100, spec)["train"]


@pytest.mark.parametrize("method", [RANK, THRESHOLD])
def test_fractions_that_sum_to_one_within_the_tolerance_still_cover_every_cloud(method):
    # 0.3 + 0.3 + 0.3999995 = 0.9999995 (accepted, within 1e-6): the last split still ends at n.
    n = 10_000
    spec = SplitSpec((("a", 0.3), ("b", 0.3), ("c", 0.3999995)), seed=4, method=method)
    parts = split_indices(n, spec)
    assert sum(len(v) for v in parts.values()) == n
    assert split_cuts(n, spec)["c"][1] == 1 << 64
    if method == RANK:
        assert split_sizes(n, spec) == {"a": 3000, "b": 3000, "c": 4000}
    # and past one, with an empty last split: nothing past n, no cloud in "c"
    over = SplitSpec((("a", 0.5), ("b", 0.5000005), ("c", 0.0)), seed=4, method=method)
    big = 10_000_000
    if method == RANK:
        assert split_sizes(big, over) == {"a": 5_000_000, "b": 5_000_000, "c": 0}
    assert {k: len(v) for k, v in split_indices(n, over).items()}["c"] == 0


def test_rank_cuts_at_the_first_rank_and_an_empty_first_split():
    ids = np.arange(10)
    keys = _py_keys(10, 6)
    order = sorted(range(10), key=lambda i: keys[i])
    spec = SplitSpec((("one", 0.1), ("rest", 0.9)), seed=6, method=RANK)
    parts = split_indices(10, spec)
    assert parts["one"].tolist() == [order[0]] and len(parts["rest"]) == 9
    for name, cut in split_cuts(10, spec).items():
        np.testing.assert_array_equal(ids[split_member(ids, 6, cut)], parts[name])
    empty_first = SplitSpec((("none", 0.0), ("all", 1.0)), seed=6, method=RANK)
    assert {k: len(v) for k, v in split_indices(10, empty_first).items()} == {"none": 0, "all": 10}
    assert split_indices(0, empty_first)["none"].dtype == np.int64


@pytest.mark.parametrize("method", [RANK, THRESHOLD])
def test_hashing_in_spans_gives_the_same_splits(method, monkeypatch):
    import pcdata.store.splits as splits

    spec = SplitSpec(seed=8, method=method)
    whole = split_indices(1000, spec)
    cuts = split_cuts(1000, spec)
    monkeypatch.setattr(splits, "_SPAN", 7)  # 143 spans, the last partial
    assert split_cuts(1000, spec) == cuts
    parts = split_indices(1000, spec)
    assert all(np.array_equal(parts[k], whole[k]) and parts[k].dtype == np.int64 for k in whole)
