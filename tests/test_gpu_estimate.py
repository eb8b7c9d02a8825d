"""benchmarks/gpu_driver.py's count of a 10-seed GLUE sweep's example passes (stage d's GPU-hour estimate),
checked against the arithmetic done by hand."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _driver():
    spec = importlib.util.spec_from_file_location("gpu_driver", ROOT / "benchmarks" / "gpu_driver.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_glue_example_passes_by_hand():
    count = _driver().glue_example_passes(seeds=1, batch=1, eval_weight=0)
    # epochs 3, 10 for RTE and STS-B; MRPC and STS-B doubled by the (b, a) copies
    by_hand = {
        "cola": 8551 * 3,  # 25,653
        "sst2": 67349 * 3,  # 202,047
        "mrpc": 3668 * 2 * 3,  # 22,008
        "stsb": 5749 * 2 * 10,  # 114,980
        "qqp": 363846 * 3,  # 1,091,538
        "mnli": 392702 * 3,  # 1,178,106
        "qnli": 104743 * 3,  # 314,229
        "rte": 2490 * 10,  # 24,900
        "wnli": 635 * 3,  # 1,905
    }
    assert {k: v for k, v in count.items() if k != "total"} == by_hand
    assert count["total"] == 2_975_366


def test_glue10_example_passes_with_dev_and_padding():
    d = _driver()
    dev = 1043 + 872 + 408 + 1500 + 40430 + 9815 + 9832 + 5463 + 277 + 71
    assert dev == 69_711
    ten = d.glue_example_passes(seeds=10, batch=1)
    assert abs(ten["total"] - 10 * (2_975_366 + dev / 3)) < 1e-6  # 29,986,030
    assert round(ten["total"]) == 29_986_030
    padded = d.glue_example_passes(seeds=10, batch=32)
    # RTE: ceil(2490 / 32) = 78 batches of 32 = 2,496 rows per epoch, 10 epochs; dev 277 at 1/3
    assert abs(padded["rte"] - 10 * (2496 * 10 + 277 / 3)) < 1e-6
    # padding adds at most 31 rows per epoch: 10 seeds x (7 tasks x 3 + 2 x 10 epochs) x 31
    assert 0 <= padded["total"] - ten["total"] <= 10 * 41 * 31
    # the GPU-hours at the rate that makes one hour: about 8,330 examples/s
    assert 0.99 < padded["total"] / 8330 / 3600 < 1.01
