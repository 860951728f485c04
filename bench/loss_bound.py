"""loss_bound.py - how small can the real loss curve get without losing a bit?
An estimate of the information in its values and times, to set beside the
codec's figure and the 3 bytes/point target.

    zcat pytorch-char-transformer-lr3e-2.csv.gz | /usr/bin/python3 bench/loss_bound.py [METRIC]

Times (in the store's default unit, ms): the empirical entropy of the step
intervals, which is what any coder pays that treats the intervals as
independent draws (the codec's delta-of-delta code pays about that).
Values (float32 stored as float64): residuals, in float32 units in the last
place, of the best of several simple predictors (the last value; the mean
of the last k values, the best a smoother can do on a noisy curve), and the
entropy of a Laplace law fitted to them (the residuals of noisy training
curves are close to Laplace; a Gaussian fit gives within 0.05 bit). Both are
estimates from 2,500 points, not proofs: a model that knew the noise
process better could do better, but nothing simple does.
"""
import csv
import math
import struct
import sys

import numpy as np


def main():
    metric = sys.argv[1] if len(sys.argv) > 1 else "train/loss"
    rows = [r for r in csv.DictReader(sys.stdin) if r["metric"] == metric]
    if len(rows) < 200:
        sys.exit("loss_bound.py: need a CSV step,wall_ns,metric,value with 200+ points of " + metric)
    t = np.array([int(r["wall_ns"]) // 1000000 for r in rows])
    v = [float(r["value"]) for r in rows]
    bits = np.array([struct.unpack("<q", struct.pack("<d", x))[0] for x in v]) >> 29  # float32 ulps

    dt = np.diff(t)
    _, c = np.unique(dt, return_counts=True)
    p = c / c.sum()
    h_time = float(-(p * np.log2(p)).sum())

    best = None
    for k in (1, 2, 4, 8, 16, 32):
        pred = np.array([bits[max(0, i - k + 1):i + 1].mean() for i in range(len(bits) - 1)])
        r = (bits[1:] - pred)[100:]  # skip the warm-up
        h = math.log2(2 * math.e * float(np.abs(r - np.median(r)).mean()))
        if best is None or h < best[1]:
            best = (k, h)
    total = h_time + best[1]
    print("%s: %d points; time intervals %.2f bits/point (empirical entropy, ms), "
          "value residuals %.2f bits/point (Laplace fit, mean of the last %d values as predictor); "
          "together %.2f bits = %.2f bytes/point before step and framing"
          % (metric, len(rows), h_time, best[1], best[0], total, total / 8))


if __name__ == "__main__":
    main()
