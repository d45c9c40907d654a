from include.transform import normalise


def test_normalise():
    assert normalise([" A "]) == ["a"]
