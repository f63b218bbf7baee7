"""initlab.course.gradient_check: the course's gradient check, to the digits its notebook prints.

The learner's functions below are written here from the course's text (a 3-layer
LINEAR->RELU->LINEAR->RELU->LINEAR->SIGMOID network, its forward pass with the cross-entropy
cost and its backward pass with the two planted bugs), not taken from initlab.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import initlab
from initlab.course import (
    dictionary_to_vector,
    gradient_check,
    gradients_to_vector,
    vector_to_dictionary,
    with_l2_cost,
)

# ------------------------------------------------------------------ the learner's code


def relu(x):
    return np.maximum(0, x)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def gradient_check_n_test_case():
    """The course's test case: ``np.random.seed(1)`` then these draws (a RandomState gives
    the same stream without touching NumPy's global RNG)."""
    rng = np.random.RandomState(1)
    x = rng.randn(4, 3)
    y = np.array([1, 1, 0])
    W1, b1 = rng.randn(5, 4), rng.randn(5, 1)
    W2, b2 = rng.randn(3, 5), rng.randn(3, 1)
    W3, b3 = rng.randn(1, 3), rng.randn(1, 1)
    return x, y, {"W1": W1, "b1": b1, "W2": W2, "b2": b2, "W3": W3, "b3": b3}


def forward_propagation_n(X, Y, parameters):
    m = X.shape[1]
    W1, b1 = parameters["W1"], parameters["b1"]
    W2, b2 = parameters["W2"], parameters["b2"]
    W3, b3 = parameters["W3"], parameters["b3"]
    Z1 = np.dot(W1, X) + b1
    A1 = relu(Z1)
    Z2 = np.dot(W2, A1) + b2
    A2 = relu(Z2)
    Z3 = np.dot(W3, A2) + b3
    A3 = sigmoid(Z3)
    log_probs = np.multiply(-np.log(A3), Y) + np.multiply(-np.log(1 - A3), 1 - Y)
    cost = 1.0 / m * np.sum(log_probs)
    return cost, (Z1, A1, W1, b1, Z2, A2, W2, b2, Z3, A3, W3, b3)


def backward_propagation_n(X, Y, cache, fixed=False):
    """The course's backward pass; ``fixed=False`` keeps its two planted bugs."""
    m = X.shape[1]
    (Z1, A1, W1, b1, Z2, A2, W2, b2, Z3, A3, W3, b3) = cache  # noqa: RUF059 (the course's)
    dZ3 = A3 - Y
    dW3 = 1.0 / m * np.dot(dZ3, A2.T)
    db3 = 1.0 / m * np.sum(dZ3, axis=1, keepdims=True)
    dA2 = np.dot(W3.T, dZ3)
    dZ2 = np.multiply(dA2, np.int64(A2 > 0))
    dW2 = 1.0 / m * np.dot(dZ2, A1.T) * (1 if fixed else 2)  # bug: * 2
    db2 = 1.0 / m * np.sum(dZ2, axis=1, keepdims=True)
    dA1 = np.dot(W2.T, dZ2)
    dZ1 = np.multiply(dA1, np.int64(A1 > 0))
    dW1 = 1.0 / m * np.dot(dZ1, X.T)
    db1 = (1.0 if fixed else 4.0) / m * np.sum(dZ1, axis=1, keepdims=True)  # bug: 4./m
    return {"dZ3": dZ3, "dW3": dW3, "db3": db3, "dA2": dA2, "dZ2": dZ2, "dW2": dW2,
            "db2": db2, "dA1": dA1, "dZ1": dZ1, "dW1": dW1, "db1": db1}  # fmt: skip


def gradient_check_n(parameters, gradients, X, Y, epsilon=1e-7):
    """The course's loop, written out as the notebook does (hard-coded shapes and order)."""
    keys = ("W1", "b1", "W2", "b2", "W3", "b3")
    shapes = {k: parameters[k].shape for k in keys}
    values = np.concatenate([np.reshape(parameters[k], (-1, 1)) for k in keys], axis=0)
    grad = np.concatenate([np.reshape(gradients["d" + k], (-1, 1)) for k in keys], axis=0)

    def vector_to_dictionary(theta):
        out, start = {}, 0
        for k in keys:
            size = int(np.prod(shapes[k]))
            out[k] = theta[start : start + size].reshape(shapes[k])
            start += size
        return out

    gradapprox = np.zeros((values.shape[0], 1))
    for i in range(values.shape[0]):
        theta_plus = np.copy(values)
        theta_plus[i] = theta_plus[i] + epsilon
        J_plus, _ = forward_propagation_n(X, Y, vector_to_dictionary(theta_plus))
        theta_minus = np.copy(values)
        theta_minus[i] = theta_minus[i] - epsilon
        J_minus, _ = forward_propagation_n(X, Y, vector_to_dictionary(theta_minus))
        gradapprox[i] = (J_plus - J_minus) / (2 * epsilon)
    numerator = np.linalg.norm(grad - gradapprox)
    return numerator / (np.linalg.norm(grad) + np.linalg.norm(gradapprox))


def _nd(fixed: bool):
    X, Y, parameters = gradient_check_n_test_case()
    _, cache = forward_propagation_n(X, Y, parameters)
    gradients = backward_propagation_n(X, Y, cache, fixed=fixed)
    return gradient_check(lambda p: forward_propagation_n(X, Y, p), parameters, gradients)


# ------------------------------------------------------------------ the course's numbers


def test_one_dimensional_example_to_the_notebooks_digits():
    # J(theta) = theta * x, dJ/dtheta = x; the notebook prints 2.919335883291695e-10
    x, theta = 2, 4
    check = gradient_check(lambda p: np.dot(p["theta"], x), {"theta": theta}, {"dtheta": x})
    assert check.difference == 2.919335883291695e-10
    assert check.correct
    assert str(check).splitlines()[0] == (
        "Your backward propagation works perfectly fine! difference = 2.919335883291695e-10"
    )
    # derived independently: (4 + 1e-7) and (4 - 1e-7) rounded to float64, times 2
    approx = ((4 + 1e-7) * 2 - (4 - 1e-7) * 2) / (2 * 1e-7)
    assert check.difference == abs(2 - approx) / (2 + abs(approx))


def test_nd_example_with_the_two_planted_bugs():
    check = _nd(fixed=False)
    # the notebook prints 0.2850931567761623; NumPy's summation order may move the last digit
    assert check.difference == pytest.approx(0.2850931567761623, rel=1e-15, abs=0)
    assert check.difference > 1e-7 and not check.correct
    assert check.wrong == ["b1", "W2"]  # exactly the planted tensors, in the course's order
    # a gradient scaled by c has difference |c - 1| / (c + 1): 4/m -> 3/5, * 2 -> 1/3
    assert check["b1"].difference == pytest.approx(3 / 5, rel=1e-6)
    assert check["W2"].difference == pytest.approx(1 / 3, rel=1e-6)
    for name in ("W1", "b2", "W3", "b3"):
        assert check[name].correct
    assert {e.parameter for e in check.worst[:3]} == {"b1", "W2"}
    text = str(check)
    assert text.startswith("There is a mistake in the backward propagation! difference = 0.28509")
    assert "backward pass is wrong for b1, W2" in text


def test_nd_example_fixed_passes():
    check = _nd(fixed=True)
    # the course's expected value, digit for digit (a round-off-dominated number: another
    # BLAS could move its last digits, but never away from the course's own loop below)
    assert check.difference == 1.1890913024229996e-07
    X, Y, parameters = gradient_check_n_test_case()
    _, cache = forward_propagation_n(X, Y, parameters)
    gradients = backward_propagation_n(X, Y, cache, fixed=True)
    assert check.difference == gradient_check_n(parameters, gradients, X, Y)
    assert check.correct and check.wrong == []
    # above 1e-7 at epsilon 1e-7 only by round-off of -log(1 - A3) with A3 = 0.9989:
    # at a 100x larger step the difference falls 100-fold, which a bug cannot do
    assert check.confirmed is not None and check.confirmed < 1e-8
    assert any("round-off" in n for n in check.notes)
    assert str(check).startswith("Your backward propagation works perfectly fine!")


def test_round_off_rescue_is_needed_and_does_not_hide_bugs():
    X, Y, parameters = gradient_check_n_test_case()
    _, cache = forward_propagation_n(X, Y, parameters)
    gradients = backward_propagation_n(X, Y, cache, fixed=True)
    # a 1% error in one bias: same relative difference at any step, so never rescued
    gradients = {**gradients, "db3": gradients["db3"] * 1.01}
    check = gradient_check(lambda p: forward_propagation_n(X, Y, p), parameters, gradients)
    assert not check.correct and check.wrong == ["b3"]
    assert check["b3"].confirmed == pytest.approx(0.01 / 2.01, rel=1e-4)


def test_after_some_training_the_check_still_passes():
    X, Y, parameters = gradient_check_n_test_case()
    for _ in range(50):
        _, cache = forward_propagation_n(X, Y, parameters)
        grads = backward_propagation_n(X, Y, cache, fixed=True)
        parameters = {k: v - 0.1 * grads["d" + k] for k, v in parameters.items()}
    _, cache = forward_propagation_n(X, Y, parameters)
    check = gradient_check(
        lambda p: forward_propagation_n(X, Y, p),
        parameters,
        backward_propagation_n(X, Y, cache, fixed=True),
    )
    assert check.correct, str(check)
    assert gradient_check(
        lambda p: forward_propagation_n(X, Y, p),
        parameters,
        backward_propagation_n(X, Y, cache, fixed=False),
    ).wrong == ["b1", "W2"]


# ------------------------------------------------------------------ helpers


def test_vectors_in_the_courses_order():
    _, _, parameters = gradient_check_n_test_case()
    shuffled = {k: parameters[k] for k in ("b3", "W2", "b1", "W1", "W3", "b2")}
    theta, keys = dictionary_to_vector(shuffled)
    # the course: np.reshape(parameters[key], (-1, 1)) for W1, b1, W2, b2, W3, b3
    expected = np.concatenate(
        [np.reshape(parameters[k], (-1, 1)) for k in ("W1", "b1", "W2", "b2", "W3", "b3")]
    )
    assert theta.shape == (47, 1) and np.array_equal(theta, expected)
    assert keys[:20] == ["W1"] * 20 and keys[20:25] == ["b1"] * 5 and keys[-1] == "b3"
    back = vector_to_dictionary(theta, parameters)
    assert all(np.array_equal(back[k], parameters[k]) for k in parameters)
    grads = {"d" + k: v * 2 for k, v in parameters.items()}
    assert np.array_equal(gradients_to_vector(grads), 2 * expected)
    # same keys as the parameters work too, and layer 10 sorts after layer 2
    many = {f"W{i}": np.full((1, 1), i) for i in (10, 2, 1)}
    assert dictionary_to_vector(many)[1] == ["W1", "W2", "W10"]
    assert np.array_equal(gradients_to_vector(many, many).ravel(), [1, 2, 10])


def test_l2_cost_wrapper_matches_the_course():
    X, Y, parameters = gradient_check_n_test_case()
    lambd, m = 0.7, X.shape[1]
    cost = with_l2_cost(lambda p: forward_propagation_n(X, Y, p), lambd, m)
    plain, cache = forward_propagation_n(X, Y, parameters)
    l2 = (1 / m) * (lambd / 2) * sum(np.sum(np.square(parameters[f"W{i}"])) for i in (1, 2, 3))
    assert cost(parameters) == pytest.approx(plain + l2, rel=1e-15)
    grads = backward_propagation_n(X, Y, cache, fixed=True)
    with_reg = {k: g + (lambd / m * parameters[k[1:]] if k.startswith("dW") else 0)
                for k, g in grads.items()}  # fmt: skip
    assert gradient_check(cost, parameters, with_reg).correct
    # forgetting the regularization term in the backward pass names every weight
    assert gradient_check(cost, parameters, grads).wrong == ["W1", "W2", "W3"]


# ------------------------------------------------------------------ refusals, non-finite


def test_dropout_left_on_is_refused():
    X, Y, parameters = gradient_check_n_test_case()
    rng = np.random.RandomState(0)

    def with_dropout(p):
        A1 = relu(np.dot(p["W1"], X) + p["b1"])
        A1 = A1 * (rng.rand(*A1.shape) < 0.5) / 0.5
        A2 = relu(np.dot(p["W2"], A1) + p["b2"])
        A3 = sigmoid(np.dot(p["W3"], A2) + p["b3"])
        return float(np.mean(-Y * np.log(A3) - (1 - Y) * np.log(1 - A3)))

    with pytest.raises(ValueError, match=r"not deterministic.*keep_prob = 1"):
        gradient_check(with_dropout, parameters, {f"d{k}": v for k, v in parameters.items()})


def test_nan_or_inf_never_passes():
    p = {"theta": np.array([[1.0]])}
    nan_cost = gradient_check(lambda q: float("nan") * q["theta"].sum(), p, {"dtheta": [[0.0]]})
    assert not nan_cost.correct and "never passes" in str(nan_cost)
    nan_grad = gradient_check(lambda q: q["theta"].sum(), p, {"dtheta": [[np.nan]]})
    assert not nan_grad.correct and nan_grad.wrong == ["theta"]
    huge = gradient_check(lambda q: 1e308 * q["theta"].sum() ** 3, p, {"dtheta": [[3e308]]})
    assert not huge.correct


def test_bad_inputs_are_named():
    p = {"W1": np.ones((2, 2)), "b1": np.zeros((2, 1))}
    cost = lambda q: float(np.sum(q["W1"]))  # noqa: E731
    with pytest.raises(ValueError, match=r"no 'dW1' \(nor 'W1'\).*did you mean 'dW'\?"):
        gradient_check(cost, p, {"db1": np.zeros((2, 1)), "dW": np.ones((2, 2))})
    with pytest.raises(ValueError, match=r"gradients\['dW1'\] has shape \(2,\)"):
        gradient_check(cost, p, {"dW1": np.ones(2), "db1": np.zeros((2, 1))})
    with pytest.raises(TypeError, match="cost must be a function"):
        gradient_check(3, p, p)
    with pytest.raises(TypeError, match="return a number"):
        gradient_check(lambda q: q["W1"], p, p)
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        gradient_check(cost, p, p, epsilon=0)
    with pytest.raises(TypeError, match="non-empty dict"):
        gradient_check(cost, {}, p)


def test_public_names_and_json():
    assert initlab.course.gradient_check is gradient_check
    for name in ("gradient_check", "dictionary_to_vector", "vector_to_dictionary",
                 "gradients_to_vector", "with_l2_cost", "initialize_parameters"):  # fmt: skip
        assert name in initlab.course.__all__
    data = json.loads(json.dumps(_nd(fixed=False).to_dict()))
    assert data["wrong"] == ["b1", "W2"] and data["correct"] is False
    assert data["message"].startswith("There is a mistake")
