"""``python -m bench.profile FILE [N]``: the top frames of a py-spy collapsed-stack file
(``BENCH_PYSPY=DIR python -m bench ...`` writes one per hub process), by own time and by
total time, as the README quotes them."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path


def main() -> None:
    path = Path(sys.argv[1])
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    print(f"{samples} samples")
    for title, counter in (("own time", own), ("total time (frame or below)", total)):
        print(f"\n-- {title}")
        for frame, n in counter.most_common(top):
            print(f"{100 * n / samples:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
