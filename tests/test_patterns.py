from math import comb

import numpy as np
import pytest
from scipy.optimize import linprog

from skbnconvex._patterns import (
    enumerate_patterns,
    max_patterns,
    pack_patterns,
    pattern_signs,
    sample_patterns,
    unique_patterns,
)
from skbnconvex._whitening import whiten


def _keys(D):
    return {col.tobytes() for col in D.T}


@pytest.mark.parametrize("n, d", [(8, 1), (9, 2), (10, 3), (7, 4)])
def test_enumeration_reaches_the_bound_in_general_position(n, d):
    Ut = whiten(np.random.default_rng(n + d).standard_normal((n, d))).Ut
    D = enumerate_patterns(Ut)
    # 2 sum_{j<=r} C(n-1, j) cells, minus the empty one.
    expected = 2 * sum(comb(n - 1, j) for j in range(d + 1)) - 1
    assert D.shape[1] == expected == max_patterns(n, d) - 1
    assert len(_keys(D)) == D.shape[1]
    assert D.any(axis=0).all()
    # Every pattern is realised by some direction: its cone is non-empty
    # (checked independently by an LP) -- here via dense random sampling:
    sampled = sample_patterns(Ut, 10**6, random_state=0, max_draws=200_000)
    assert _keys(sampled) <= _keys(D)


def test_enumerated_patterns_are_realisable():
    from scipy.optimize import linprog

    Ut = whiten(np.random.default_rng(3).standard_normal((7, 2))).Ut
    D = enumerate_patterns(Ut)
    for col in D.T:
        S = np.where(col, 1.0, -1.0)
        # find g with S * (Ut g) >= 1 (strictly inside the cell)
        res = linprog(np.zeros(3), A_ub=-(S[:, None] * Ut), b_ub=-np.ones(7),
                      bounds=[(None, None)] * 3)
        assert res.status == 0


def test_sampling_is_seeded_distinct_and_non_empty():
    Ut = whiten(np.random.default_rng(0).standard_normal((40, 5))).Ut
    D1 = sample_patterns(Ut, 30, random_state=0)
    D2 = sample_patterns(Ut, 30, random_state=0)
    D3 = sample_patterns(Ut, 30, random_state=1)
    assert D1.shape == (40, 30)
    np.testing.assert_array_equal(D1, D2)
    assert _keys(D1) != _keys(D3)
    assert len(_keys(D1)) == 30 and D1.any(axis=0).all()


def test_sampled_patterns_are_those_of_the_drawn_directions(monkeypatch):
    """Patterns formed in chunks of directions (5 columns here) are the
    first distinct ``1[Ut g >= 0]`` of the directions drawn, in order."""
    import skbnconvex._patterns as patterns_module

    Ut = whiten(np.random.default_rng(0).standard_normal((40, 5))).Ut
    monkeypatch.setattr(patterns_module, "_CHUNK_ENTRIES", 5 * 40 + 3)
    D = sample_patterns(Ut, 30, random_state=0)
    G = np.random.RandomState(0).standard_normal((6, 60))  # the first round
    np.testing.assert_array_equal(D, unique_patterns(Ut @ G >= 0)[:, :30])


def test_sampling_stops_when_patterns_run_out():
    Ut = whiten(np.random.default_rng(0).standard_normal((4, 1))).Ut
    D = sample_patterns(Ut, 100, random_state=0)
    assert D.shape[1] == max_patterns(4, 1) - 1


def test_unique_patterns_drops_duplicates_empty_and_known():
    D = np.array([[1, 1, 0, 0, 1], [0, 0, 0, 1, 1]], dtype=bool)
    np.testing.assert_array_equal(unique_patterns(D), D[:, [0, 3, 4]])
    np.testing.assert_array_equal(unique_patterns(D, exclude=D[:, [3]]), D[:, [0, 4]])


def test_enumeration_refuses_unaffordable_counts():
    Ut = whiten(np.random.default_rng(0).standard_normal((200, 10))).Ut
    with pytest.raises(ValueError, match="Sample patterns instead"):
        enumerate_patterns(Ut)


def _brute_force_patterns(Ut, n_dirs=200_000, seed=0):
    """Patterns of many random directions: a subset of all cells, found
    without the arrangement's geometry (cells of degenerate data are still
    full-dimensional, so random directions hit each with positive
    probability)."""
    G = np.random.default_rng(seed).standard_normal((Ut.shape[1], n_dirs))
    return unique_patterns(Ut @ G > 0)


@pytest.mark.parametrize("kind", ["repeated", "grid", "collinear"])
def test_enumeration_is_complete_on_degenerate_data(kind):
    # Repeated samples and points sharing hyperplanes put more than k - 1
    # rows through one ray; a cell missed there would make the exact
    # certificate claim a global optimum that is not one.
    rng = np.random.default_rng(3)
    if kind == "repeated":
        X = np.repeat(rng.standard_normal((12, 2)), rng.integers(1, 4, 12), axis=0)
    elif kind == "grid":
        X = np.array([[i, j] for i in range(5) for j in range(4)], dtype=float)
    else:
        t = rng.standard_normal(6)
        X = np.vstack([np.column_stack([t, 2 * t + 1]), rng.standard_normal((6, 2))])
    Ut = whiten(X).Ut
    D = enumerate_patterns(Ut)
    sampled = _brute_force_patterns(Ut)
    assert _keys(sampled) <= _keys(D)
    # And nothing spurious: the patterns the directions missed are cells
    # too (thin ones), by a linear program: some g has every row strictly
    # on its side.
    found = _keys(sampled)
    for col in D.T:
        if col.tobytes() in found:
            continue
        signed = np.where(col, 1.0, -1.0)[:, None] * Ut
        k = Ut.shape[1]
        res = linprog(
            np.r_[np.zeros(k), -1.0],
            A_ub=np.hstack([-signed, np.ones((len(col), 1))]),
            b_ub=np.zeros(len(col)),
            bounds=[(-1, 1)] * k + [(None, 1)],
        )
        assert res.status == 0 and -res.fun > 1e-9


def test_enumeration_of_repeated_samples_equals_that_of_unique_ones():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((15, 2))
    counts = rng.integers(1, 4, 15)
    D_unique = enumerate_patterns(whiten(X).Ut)
    D_repeated = enumerate_patterns(whiten(np.repeat(X, counts, axis=0)).Ut)
    # Repeated rows share their activation; the patterns are the same cells
    # (the whitening differs, the arrangement of the rows does not).
    assert _keys(np.repeat(D_unique, counts, axis=0)) == _keys(D_repeated)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 16, 45, 1001])
@pytest.mark.parametrize("order", ["C", "F"])
def test_pack_patterns_is_packbits_by_column(n, order):
    rng = np.random.default_rng(n)
    D = np.asarray(rng.random((n, 13)) < 0.5, order=order)
    keys = pack_patterns(D)
    np.testing.assert_array_equal(keys, np.packbits(D, axis=0).T)
    assert keys.flags.c_contiguous and keys.dtype == np.uint8
    # Every pattern's bytes hold exactly its column.
    for j in range(D.shape[1]):
        np.testing.assert_array_equal(np.unpackbits(keys[j])[:n], D[:, j])
    assert pack_patterns(D[:, :0]).shape == (0, -(-n // 8))


def test_pattern_signs_are_two_d_minus_one():
    rng = np.random.default_rng(0)
    D = rng.random((7, 5)) > 0.5
    for M in (D, D.T, D[:, 2]):
        S = pattern_signs(M)
        assert S.dtype == np.float64 and S.flags.c_contiguous
        np.testing.assert_array_equal(S, np.where(M, 1.0, -1.0))
