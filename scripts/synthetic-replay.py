#!/usr/bin/env python3
"""Writes a synthetic ADAUSDT bookTicker replay file (the format `deltadefi-mm record` writes).

    scripts/synthetic-replay.py FRAMES OUT [SEED]

Frames arrive at ~35 per second (exponential gaps, mean 28.8 ms), so 3,000,000 frames span
about 23.6 hours, the order of a day of the real stream. The mid takes a one-tick step in 8 %
of frames; the spread is one tick (two in 10 % of frames); displayed sizes are uniform in
1,000..200,000. Used for the backtest's 24-hour figure in BENCHMARKS.md.
"""
import random
import sys


def main():
    n = int(sys.argv[1])
    out = sys.argv[2]
    r = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 5)
    t = 1764460800000  # 2025-11-30 00:00 UTC
    u = 60000000
    mid = 4500  # in units of 0.0001
    with open(out, "w") as f:
        f.write("# synthetic ADAUSDT bookTicker, %d frames at ~35/s\n" % n)
        for _ in range(n):
            t += max(1, int(r.expovariate(1 / 28.8)))
            u += r.randint(1, 40)
            if r.random() < 0.08:
                mid += r.choice((-1, 1))
            spread = 1 if r.random() < 0.9 else 2
            b, a = mid, mid + spread
            bq = round(r.uniform(1000, 200000), 1)
            aq = round(r.uniform(1000, 200000), 1)
            f.write(
                '{"recv_ms":%d,"msg":{"u":%d,"s":"ADAUSDT","b":"%d.%04d","B":"%.1f","a":"%d.%04d","A":"%.1f"}}\n'
                % (t, u, b // 10000, b % 10000, bq, a // 10000, a % 10000, aq)
            )


if __name__ == "__main__":
    main()
