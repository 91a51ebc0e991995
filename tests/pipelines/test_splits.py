import collections

import pytest

from pipelines.splits import assign_splits, parse_splits

SPLITS = parse_splits("train:0.8,validation:0.1,test:0.1")


def test_parse_splits():
    assert SPLITS == [("train", 0.8), ("validation", 0.1), ("test", 0.1)]
    for bad in ("train:0.8,test:0.1", "train:x", "train", "train:0.5,train:0.5", ""):
        with pytest.raises(ValueError):
            parse_splits(bad)


def test_exact_counts_deterministic_and_salted():
    members = [(f"k{i}", "") for i in range(50)]
    a = assign_splits(members, SPLITS, "s1")
    assert a == assign_splits(list(reversed(members)), SPLITS, "s1")
    assert collections.Counter(a.values()) == {"train": 40, "validation": 5, "test": 5}
    assert a != assign_splits(members, SPLITS, "s2")


def test_groups_never_straddle_splits():
    members = [(f"k{i}", f"g{i // 3}") for i in range(60)]
    a = assign_splits(members, SPLITS, "salt")
    for g in range(20):
        assert len({a[f"k{i}"] for i in range(g * 3, g * 3 + 3)}) == 1
