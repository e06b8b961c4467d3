import pytest

from harness import Sink


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()
