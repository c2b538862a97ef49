import numpy as np

from pcdata.store.format import SplitSpec
from pcdata.store.splits import split_indices, split_sizes, splitmix64


def test_splitmix64_matches_the_reference_generator():
    # splitmix64 seeded with 0: its first output is the finaliser of the golden-ratio increment.
    assert int(splitmix64(np.array([0x9E3779B97F4A7C15], dtype=np.uint64))[0]) == 0xE220A8397B1DCDAF


def test_splits_partition_every_cloud_with_exact_sizes():
    spec = SplitSpec()
    parts = split_indices(10_001, spec)
    assert {k: len(v) for k, v in parts.items()} == split_sizes(10_001, spec) == {"train": 7000, "val": 1500, "test": 1501}
    allidx = np.concatenate(list(parts.values()))
    assert np.array_equal(np.sort(allidx), np.arange(10_001))


def test_splits_depend_on_seed_and_are_reproducible():
    a = split_indices(1000, SplitSpec(seed=1))
    b = split_indices(1000, SplitSpec(seed=1))
    c = split_indices(1000, SplitSpec(seed=2))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])


def _py_splitmix64(x: int) -> int:
    mask = (1 << 64) - 1
    z = x & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_assignment_equals_a_pure_python_reimplementation():
    # Machine independence: plain Python integers give the same ranking as the numpy code.
    n, seed = 500, 7
    keys = [_py_splitmix64(i + seed * 0x9E3779B97F4A7C15) for i in range(n)]
    order = sorted(range(n), key=lambda i: keys[i])
    sizes = split_sizes(n, SplitSpec(seed=seed))
    got = split_indices(n, SplitSpec(seed=seed))
    assert got["train"].tolist() == sorted(order[: sizes["train"]])
    assert got["test"].tolist() == sorted(order[sizes["train"] + sizes["val"]:])


def test_split_sizes_equal_exact_decimal_arithmetic():
    # 90 x 0.7 is 62.999... in floats: the cut must still be 63, as exact arithmetic gives.
    from fractions import Fraction

    for fractions in ((("train", 0.7), ("val", 0.15), ("test", 0.15)), (("train", 0.8), ("val", 0.1), ("test", 0.1)),
                      (("a", 0.6), ("b", 0.3), ("c", 0.1)), (("train", 0.55), ("test", 0.45))):
        spec = SplitSpec(fractions)
        for n in range(1, 2001):
            acc, cuts = Fraction(0), [0]
            for i, (_, f) in enumerate(fractions):
                acc += Fraction(str(f))
                cuts.append(n if i == len(fractions) - 1 else int(acc * n))  # int() floors a positive Fraction
            expected = {name: cuts[i + 1] - cuts[i] for i, (name, _) in enumerate(fractions)}
            assert split_sizes(n, spec) == expected, (fractions, n)
    assert split_sizes(90, SplitSpec((("train", 0.7), ("test", 0.3))))["train"] == 63
