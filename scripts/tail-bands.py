"""Bands of the paced tail probe's samples (scripts/tail-probe.patch): per latency band, the
median wall and CPU time, the share switched out voluntarily and involuntarily, CPU over wall."""
import statistics
import sys

rows = sorted((list(map(int, l.split())) for l in open(sys.argv[1] if len(sys.argv) > 1 else "/tmp/all.txt")), key=lambda r: r[0])
n = len(rows)


def band(name, sub):
    if not sub:
        return
    print(
        f"{name}: n={len(sub)} wall med={statistics.median(r[0] for r in sub) / 1e3:.1f} us"
        f" cpu med={statistics.median(r[1] for r in sub) / 1e3:.1f} us"
        f" voluntary={sum(1 for r in sub if r[2] >= 1_000_000) / len(sub):.2f}"
        f" involuntary={sum(1 for r in sub if r[2] % 1_000_000 > 0) / len(sub):.2f}"
        f" cpu/wall={sum(r[1] for r in sub) / sum(r[0] for r in sub):.2f}"
    )


band("fastest 50%", rows[: n // 2])
band("50-90%", rows[n // 2 : n * 9 // 10])
band("90-99%", rows[n * 9 // 10 : n * 99 // 100])
band("slowest 1%", rows[n * 99 // 100 :])
