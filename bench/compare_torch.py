"""Benchmark lstm_native against PyTorch (see lstm_native/benchmark.py for what it measures).

    python bench/compare_torch.py --out bench/latest.md
"""
import sys

from lstm_native.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
