"""seisoku.estimators.BaggingMLPClassifier: scikit-learn's estimator checks, members with
different class sets, parallel fits, accuracy against its members on digits, bad input."""

from __future__ import annotations

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from seisoku import data, ops  # noqa: E402
from seisoku.estimators import BaggingMLPClassifier, MLPClassifier  # noqa: E402


def blas_rows_depend_on_the_batch() -> bool:
    """Whether a row of a small float32 product comes out differently alone than in a batch
    (some OpenBLAS kernels sum in a batch-dependent order), which check_methods_subset_
    invariance's 1e-7 tolerance does not allow a float32 network."""
    rng = np.random.default_rng(0)
    for k, n in ((3, 64), (64, 3)):
        a = rng.standard_normal((20, k), dtype=np.float32)
        w = rng.standard_normal((n, k), dtype=np.float32)
        full = ops.gemm(a, w, trans_b=True)
        for i in range(20):
            if not np.array_equal(ops.gemm(a[i : i + 1], w, trans_b=True)[0], full[i]):
                return True
    return False


def expected_failures(estimator) -> dict[str, str]:
    failures = {
        "check_sample_weight_equivalence_on_dense_data": (
            "bootstrap resamples and mini-batch SGD: a weight of 2 is not two drawn rows"
        ),
    }
    if blas_rows_depend_on_the_batch():
        failures["check_methods_subset_invariance"] = (
            "this BLAS sums a row of a small float32 product in an order that depends on the batch"
        )
    return failures


@parametrize_with_checks([BaggingMLPClassifier()], expected_failed_checks=expected_failures)
def test_sklearn_estimator_checks(estimator, check) -> None:
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    x, y = data.load_digits()
    return train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)


def small() -> MLPClassifier:
    return MLPClassifier(hidden_layer_sizes=(32,), max_iter=40, learning_rate_init=3e-3)


def test_members_with_different_class_sets_are_aligned_by_class() -> None:
    """Resamples of 4 of 30 samples miss classes: each member's probabilities land in the
    columns of its own classes, zeros elsewhere."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 3)).astype(np.float32)
    y = np.array(["a", "b", "c", "d", "e"] * 6)
    est = BaggingMLPClassifier(small(), 4, max_samples=4 / 30, random_state=0).fit(x, y)
    sets = [tuple(m.classes_) for m in est.estimators_]
    assert len(set(sets)) > 1 and all(len(s) < 5 for s in sets)
    expected = np.zeros((4, 30, 5))
    for i, m in enumerate(est.estimators_):
        expected[i][:, np.searchsorted(est.classes_, m.classes_)] = m.predict_proba(x)
    np.testing.assert_allclose(est.predict_proba(x), expected.mean(axis=0))
    assert set(est.predict(x)) <= set(y)


def test_parallel_fit_equals_sequential_and_beats_the_average_member(digits) -> None:
    x_train, x_test, y_train, y_test = digits
    fits = [
        BaggingMLPClassifier(small(), 5, n_jobs=jobs, random_state=1).fit(x_train, y_train)
        for jobs in (1, 2)
    ]
    np.testing.assert_array_equal(fits[0].predict_proba(x_test), fits[1].predict_proba(x_test))
    members = fits[0].member_scores(x_test, y_test)
    assert 1 - fits[0].score(x_test, y_test) < 1 - np.mean(members)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_estimators": 0}, r"'n_estimators' must be an int >= 1, got 0"),
        ({"n_jobs": -1}, r"'n_jobs' must be an int >= 1, got -1"),
        ({"max_samples": 1.5}, r"'max_samples' must be in \(0, 1\], got 1.5"),
        ({"voting": "mean"}, r"'voting' must be 'soft' or 'hard', got 'mean'"),
        ({"backend": "gpu"}, r"'backend' must be one of .*got 'gpu'"),
        ({"estimator": 3}, r"'estimator' must be None or a classifier with fit, got 3"),
    ],
)
def test_bad_parameters_name_the_argument(params, message) -> None:
    x = np.zeros((6, 2), np.float32)
    with pytest.raises(ValueError, match=message):
        BaggingMLPClassifier(**params).fit(x, [0, 1] * 3)
