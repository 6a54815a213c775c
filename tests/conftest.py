"""What the test modules share: the real CIFAR-10 when ``SIMAM_DATA`` holds it, and torch's thread
count.

``@pytest.mark.cifar10`` marks a test that reads the real data set; it is skipped, with the reason,
where the data are missing (CI points ``SIMAM_DATA`` at them).
"""

import pytest
import torch

from simam.settings import data_root


def has_cifar10() -> bool:
    return (data_root() / "cifar-10-batches-py" / "test_batch").is_file()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cifar10: reads the real CIFAR-10 under SIMAM_DATA; skipped without it"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if has_cifar10():
        return
    skip = pytest.mark.skip(reason=f"CIFAR-10 not found under {data_root()}: set SIMAM_DATA")
    for item in items:
        if "cifar10" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests, then the caller's setting again. Small tensors gain
    nothing from intra-op threads, and on a busy machine their synchronisation costs many times the
    work itself; training runs are also bit-reproducible only at a fixed thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def keep_thread_count():
    """Gives the caller's thread count back after a module whose runs set their own."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
