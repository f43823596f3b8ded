import pytest
import torch

from flexlib.engine.distributed import separate_kernel_cache

separate_kernel_cache()   # compiled tests: an inductor cache of their own instruction set (see there)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
