"""seisoku.estimators: scikit-learn's own estimator checks, use inside Pipeline, GridSearchCV
and BaggingClassifier, the regularization parameters, and bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.ensemble import BaggingClassifier  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from conftest import requires_cuda  # noqa: E402
from seisoku import data, nn, ops  # noqa: E402
from seisoku.estimators import MLPClassifier, MLPRegressor  # noqa: E402

# Mini-batch training visits the rows of a repeated sample in different batches than one
# row with a weight of 2, so the two fits differ (scikit-learn marks its own SGDClassifier
# and SGDRegressor the same way); zero weights are exactly removal, which is checked.
SAMPLE_WEIGHT_IS_NOT_REPETITION = {
    "check_sample_weight_equivalence_on_dense_data": (
        "mini-batch SGD: a weight of 2 is not two rows in different mini-batches"
    ),
}


def blas_rows_depend_on_the_batch() -> bool:
    """Whether a row of a float32 product comes out differently alone than in a batch of 20,
    for the products of scikit-learn's subset-invariance check (3 features, 100 hidden
    units, 1 to 3 outputs). OpenBLAS picks kernels by CPU and shape, and some sum a row in
    an order that depends on the batch; the last bit that changes is more than the check's
    1e-7 tolerance allows a float32 network."""
    rng = np.random.default_rng(0)
    for k, n in ((3, 100), (100, 1), (100, 3)):
        a = rng.standard_normal((20, k), dtype=np.float32)
        w = rng.standard_normal((n, k), dtype=np.float32)  # a Linear's (out, in) weight
        full = ops.gemm(a, w, trans_b=True)
        for i in range(20):
            if not np.array_equal(ops.gemm(a[i : i + 1], w, trans_b=True)[0], full[i]):
                return True
    return False


def expected_failures(estimator) -> dict[str, str]:
    failures = dict(SAMPLE_WEIGHT_IS_NOT_REPETITION)
    if blas_rows_depend_on_the_batch():
        failures["check_methods_subset_invariance"] = (
            "this BLAS sums a row of a small float32 product in an order that depends on the batch"
        )
    return failures


@parametrize_with_checks(
    [MLPClassifier(), MLPRegressor()], expected_failed_checks=expected_failures
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    x, y = data.load_digits()
    return train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)


def small_classifier(**kw):
    return MLPClassifier((32,), **{"max_iter": 30, "batch_size": 32, "random_state": 0, **kw})


def test_pipeline_and_grid_search(digits):
    x_train, x_test, y_train, y_test = digits
    pipe = make_pipeline(StandardScaler(), small_classifier())
    grid = GridSearchCV(pipe, {"mlpclassifier__dropout": [0.0, 0.3]}, cv=2)
    grid.fit(x_train[:400], y_train[:400])
    assert grid.best_params_["mlpclassifier__dropout"] in (0.0, 0.3)
    assert len(grid.cv_results_["mean_test_score"]) == 2
    assert grid.score(x_test, y_test) > 0.9


def test_bagging_uses_bootstrap_weights(digits):
    x_train, x_test, y_train, y_test = digits
    bag = BaggingClassifier(small_classifier(), n_estimators=3, random_state=0)
    bag.fit(x_train[:600], y_train[:600])
    assert bag.score(x_test, y_test) > 0.9
    members = [e.model_.state_dict()["0.weight"] for e in bag.estimators_]
    assert not np.array_equal(members[0], members[1])  # different bootstrap samples


def test_regressor_fits_a_smooth_function():
    x, y = data.make_regression(300, noise=0.02, seed=0)
    est = MLPRegressor((32, 32), max_iter=100, batch_size=32, random_state=0)
    est.fit(x[:200], y[:200])
    assert est.predict(x[200:]).shape == (100,)
    assert est.score(x[200:], y[200:]) > 0.9
    two = MLPRegressor((16,), max_iter=5, random_state=0).fit(x, np.c_[y, -y])
    assert two.predict(x).shape == (300, 2)


def test_regularization_parameters_act(digits):
    x_train, _, y_train, _ = digits
    x, y = x_train[:300], y_train[:300]
    sparse = small_classifier(l1=3e-3, l2=0.0).fit(x, y)
    dense = small_classifier(l2=0.0).fit(x, y)
    zeros = (sparse.model_.state_dict()["0.weight"] == 0).mean()
    assert zeros > 0.3 and (dense.model_.state_dict()["0.weight"] == 0).mean() < 0.05
    bounded = small_classifier(max_norm=0.5).fit(x, y)
    assert np.linalg.norm(bounded.model_.state_dict()["0.weight"], axis=1).max() <= 0.5 + 1e-5
    smooth = small_classifier(label_smoothing=0.3).fit(x, y)
    assert smooth.predict_proba(x).max() < dense.predict_proba(x).max()
    steps = []

    def augment(xb, step):
        steps.append(step)
        return xb

    small_classifier(augment=augment, max_iter=3, batch_size=100).fit(x, y)
    assert steps == list(range(9))  # 3 batches of 100 in each of 3 epochs
    dropped = small_classifier(dropout=0.5, input_dropout=0.1).fit(x, y)
    assert isinstance(dropped.model_[0], nn.Dropout) and dropped.model_[1].p == 0.5
    first = dropped.model_.parameters()[0].value
    assert first.shape == (32, 64) and not np.array_equal(
        first, dense.model_.state_dict()["0.weight"]
    )


def test_early_stopping_keeps_the_best_epoch(digits):
    x_train, x_test, y_train, y_test = digits
    est = MLPClassifier(
        (32,), early_stopping=True, n_iter_no_change=3, max_iter=300, random_state=0
    ).fit(x_train, y_train)
    assert est.best_epoch_ is not None and est.n_iter_ < 300
    assert est.n_iter_ == est.best_epoch_ + 1 + 3
    assert "val_loss" in est.history_.epochs[0]
    assert est.score(x_test, y_test) > 0.9


def test_fit_is_reproducible_and_pickles(digits):
    x_train, x_test, y_train, _ = digits
    a = small_classifier(dropout=0.2).fit(x_train[:300], y_train[:300])
    b = small_classifier(dropout=0.2).fit(x_train[:300], y_train[:300])
    np.testing.assert_array_equal(a.predict_proba(x_test), b.predict_proba(x_test))
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(a.predict_proba(x_test), c.predict_proba(x_test))
    np.testing.assert_allclose(
        a.predict_log_proba(x_test), np.log(a.predict_proba(x_test)), atol=1e-12
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"hidden_layer_sizes": (0,)}, r"hidden_layer_sizes must be positive ints, got \(0,\)"),
        ({"solver": "lbfgs"}, "solver must be one of adam, sgd, got 'lbfgs'"),
        ({"device": "tpu"}, "device must be 'cpu' or 'cuda', got 'tpu'"),
        ({"max_iter": 0}, "max_iter must be an int >= 1, got 0"),
        ({"batch_size": "big"}, "batch_size must be 'auto' or an int >= 1, got 'big'"),
        ({"validation_fraction": 1.0}, r"validation_fraction must be in \(0, 1\), got 1.0"),
        ({"l2": -1.0}, "l2 must be a finite number >= 0, got -1.0"),
        ({"dropout": 1.0}, "dropout"),
        ({"label_smoothing": 1.5}, "label_smoothing"),
        ({"augment": "shift"}, "augment must be None or a callable"),
    ],
)
def test_bad_parameters_are_value_errors(params, message):
    x, y = data.make_blobs(60, seed=0)
    with pytest.raises(ValueError, match=message):
        MLPClassifier(**{"max_iter": 2, **params}).fit(x, y)


def test_bad_data_is_a_value_error():
    x, y = data.make_blobs(60, seed=0)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MLPClassifier(max_iter=2).fit(bad, y)
    with pytest.raises(ValueError, match="at least 2 classes"):
        MLPClassifier(max_iter=2).fit(x, np.zeros(60))
    with pytest.raises(ValueError, match="at least one non-zero"):
        MLPClassifier(max_iter=2).fit(x, y, sample_weight=np.zeros(60))
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        MLPClassifier(max_iter=2).fit(x, y, sample_weight=-np.ones(60))
    est = MLPClassifier(max_iter=2).fit(x, y)
    with pytest.raises(ValueError, match="3 features, but MLPClassifier is expecting 2"):
        est.predict(np.zeros((4, 3)))


@requires_cuda
def test_cuda_device_matches_cpu(digits):
    x_train, x_test, y_train, _ = digits
    cpu = small_classifier(dropout=0.2, max_iter=5).fit(x_train, y_train)
    gpu = small_classifier(dropout=0.2, max_iter=5, device="cuda").fit(x_train, y_train)
    proba = gpu.predict_proba(x_test)
    assert isinstance(proba, np.ndarray)
    np.testing.assert_allclose(proba, cpu.predict_proba(x_test), atol=1e-3)
