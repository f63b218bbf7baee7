import numpy as np
import pytest
import torch
from sklearn.datasets import make_circles

from initlab import datasets


def test_circles_is_the_course_recipe_bit_for_bit():
    state = np.random.get_state()
    try:
        np.random.seed(1)
        x_train, y_train = make_circles(n_samples=300, noise=0.05)
        np.random.seed(2)
        x_test, y_test = make_circles(n_samples=100, noise=0.05)
    finally:
        np.random.set_state(state)
    before = np.random.get_state()[1].copy()
    data = datasets.load("circles")
    assert np.array_equal(np.random.get_state()[1], before)  # global RNG untouched
    assert np.array_equal(data.x_train.numpy(), x_train)
    assert np.array_equal(data.y_train.numpy(), y_train)
    assert np.array_equal(data.x_test.numpy(), x_test)
    assert np.array_equal(data.y_test.numpy(), y_test)
    assert data.x_train.dtype == torch.float64 and data.y_train.dtype == torch.int64


@pytest.mark.parametrize(
    ("name", "features", "classes", "n_train"),
    [("circles", 2, 2, 300), ("moons", 2, 2, 300), ("spiral", 2, 2, 300), ("blobs", 2, 3, 300),
     ("digits", 64, 10, 1348)],
)  # fmt: skip
def test_builtin_shapes_and_determinism(name, features, classes, n_train):
    a, b = datasets.load(name), datasets.load(name)
    assert a.x_train.shape == (n_train, features)
    assert a.n_classes == classes
    assert a.x_test.shape[1] == features and a.x_test.shape[0] > 0
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert set(a.y_train.tolist()) == set(range(classes))
    assert name in str(a) and a.to_dict()["n_features"] == features


def test_options_change_the_data():
    assert datasets.load("moons", n_train=50, seed=7).x_train.shape == (50, 2)
    for name in ("spiral", "blobs"):  # a test split larger than 90%: n_test, not a fraction
        small = datasets.load(name, n_train=10, n_test=100)
        assert small.x_train.shape == (10, 2) and small.x_test.shape == (100, 2)
    assert not torch.equal(
        datasets.load("circles", seed=5).x_train, datasets.load("circles").x_train
    )


def test_unknown_name_and_option():
    with pytest.raises(ValueError, match="did you mean 'circles'"):
        datasets.load("circle")
    with pytest.raises(TypeError, match=r"no option 'nois'.*noise"):
        datasets.load("circles", nois=0.1)
    with pytest.raises(ValueError, match="noise must be >= 0"):
        datasets.load("moons", noise=-1)
    with pytest.raises(FileNotFoundError):
        datasets.load("missing.csv")


def _write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_with_header_and_string_labels(tmp_path):
    rows = "\n".join(f"{i * 0.1},{i % 3},{'cat' if i % 2 else 'dog'}" for i in range(40))
    path = _write(tmp_path, "x1,x2,label\n" + rows + "\n")
    data = datasets.load(path, label="label", test_fraction=0.25)
    assert data.x_train.shape == (30, 2) and data.x_test.shape == (10, 2)
    assert data.classes == ("cat", "dog") and data.n_classes == 2


def test_csv_without_header_label_index(tmp_path):
    path = _write(tmp_path, "\n".join(f"{i % 2},{i}.5,{i}" for i in range(20)))
    data = datasets.load(path, label=0)
    assert data.n_features == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,y\n1,2,0\n3,,1\n", r"missing value at row 3, column 'b'"),
        ("a,b,y\n1,2,0\n3,abc,1\n", r"non-numeric value 'abc' at row 3, column 'b'"),
        ("a,b,y\n1,2,0\n3,4\n", r"row 3 has 2 columns; expected 3"),
        ("a,b,y\n1,2,0\n3,4,0\n", r"single class \(0\)"),
        ("a,b,y\n1,nan,0\n3,4,1\n", r"missing value at row 2, column 'b'"),
    ],
)
def test_csv_validation_names_row_and_column(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        datasets.load(_write(tmp_path, text))


def test_csv_unknown_label_column(tmp_path):
    with pytest.raises(ValueError, match="did you mean 'label'"):
        datasets.load(_write(tmp_path, "a,label\n1,0\n2,1\n"), label="labels")


def test_npz(tmp_path):
    rng = np.random.RandomState(0)
    path = tmp_path / "d.npz"
    np.savez(path, X=rng.randn(40, 3), y=rng.randint(0, 2, 40))
    data = datasets.load(path)
    assert data.n_features == 3 and data.x_train.shape[0] + data.x_test.shape[0] == 40
    np.savez(path, X=rng.randn(40, 3), y=rng.randint(0, 2, 40), X_test=rng.randn(5, 3),
             y_test=rng.randint(0, 2, 5))  # fmt: skip
    assert datasets.load(path).x_test.shape == (5, 3)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"X": np.zeros((10, 2)), "y": np.zeros(9)}, r"y must have shape \(10,\)"),
        ({"X": np.zeros(10), "y": np.zeros(10)}, r"X must have shape \(N, features\)"),
        ({"X": np.array([[0.0, np.nan]] * 4), "y": np.array([0, 1, 0, 1])}, "row 0, column 1"),
        ({"X": np.zeros((4, 2)), "y": np.zeros(4)}, "single class"),
        ({"features": np.zeros((4, 2)), "y": np.zeros(4)}, "has no array"),
    ],
)
def test_npz_validation(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message):
        datasets.load(path)
