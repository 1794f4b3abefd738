import os

import numpy as np
import pytest
import torch

torch.set_num_threads(int(os.environ.get("NCREPRO_TEST_THREADS", "2")))


@pytest.fixture
def rng():
    return np.random.default_rng(0)
