"""Run every benchmark in turn (each in its own process, so they do not share threads), then draw the plot.

    python benchmarks/run_all.py            # the full CPU set: ~8 minutes on 2 cores, and ~10 more for
    python benchmarks/run_all.py --quick    # bench_compile (compiling takes minutes there); fewer sizes and repeats
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["bench_layer.py", "bench_fft_vs_spatial.py", "bench_path_choice.py", "bench_ops.py", "bench_cropping.py",
           "bench_resolution.py", "bench_kernel_generation.py", "bench_compile.py"]


def main():
    extra = sys.argv[1:]
    for script in SCRIPTS:
        start = time.perf_counter()
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), *extra], check=True)
        print(f"== {script}: {time.perf_counter() - start:.0f} s", flush=True)
    subprocess.run([sys.executable, str(HERE / "plot.py")], check=True)


if __name__ == "__main__":
    main()
