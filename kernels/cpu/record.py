"""The bounded record of a training run's per-step losses (``ppl.training.history.History``): a curve of
at most P points, each the mean, minimum and maximum of an aligned block of `width` steps and
the bias-corrected exponential moving average (EMA) at the block's last step, plus the
unfinished block and running statistics of the whole run. When the P points are full, pairs
of neighbours merge (P / 2 points of twice the width), so memory stays the same however long
the run.

Every value is folded in step by step, in step order, so the record after steps 0 .. n - 1 is
the same bit for bit however the steps were cut into calls (chunks of fit's loop, a run
stopped at a checkpoint and resumed).

    ints = [steps, width, points, block count, capacity P]
    flts = [block sum, block min, block max, EMA accumulator, EMA decay, sum, min, max, last]
    pts  = (4, P): rows mean, min, max, EMA of each finished point
"""
import math

from numba import njit

I_STEPS, I_WIDTH, I_POINTS, I_COUNT, I_CAP = 0, 1, 2, 3, 4
F_BSUM, F_BMIN, F_BMAX, F_EMA, F_DECAY, F_SUM, F_MIN, F_MAX, F_LAST = 0, 1, 2, 3, 4, 5, 6, 7, 8
N_INTS, N_FLTS = 5, 9


@njit(cache=True)
def ema_value(m, decay, steps):
    """The bias-corrected EMA after `steps` values: m / (1 - decay ** steps)."""
    return m / (1.0 - decay ** float(steps))


@njit(cache=True)
def record_losses(ints, flts, pts, losses, n):
    """Fold losses[0 .. n - 1] (the next n steps) into the record (ints, flts, pts)."""
    steps, width, npts, c, cap = ints[0], ints[1], ints[2], ints[3], ints[4]
    bsum, bmin, bmax, m, d = flts[0], flts[1], flts[2], flts[3], flts[4]
    tsum, tmin, tmax, last = flts[5], flts[6], flts[7], flts[8]
    for i in range(n):
        v = losses[i]
        steps += 1
        m = d * m + (1.0 - d) * v
        if steps == 1:
            tsum, tmin, tmax = v, v, v
        else:
            tsum += v
            tmin = min(tmin, v)
            tmax = max(tmax, v)
        last = v
        if c == 0:
            bsum, bmin, bmax = v, v, v
        else:
            bsum += v
            bmin = min(bmin, v)
            bmax = max(bmax, v)
        c += 1
        if c == width:
            if npts == cap:   # full: neighbours merge; the open block is then the first half of one
                half = cap // 2
                for j in range(half):
                    a, b = 2 * j, 2 * j + 1
                    pts[0, j] = 0.5 * (pts[0, a] + pts[0, b])
                    pts[1, j] = min(pts[1, a], pts[1, b])
                    pts[2, j] = max(pts[2, a], pts[2, b])
                    pts[3, j] = pts[3, b]
                npts = half
                width *= 2
            else:
                pts[0, npts] = bsum / width
                pts[1, npts] = bmin
                pts[2, npts] = bmax
                pts[3, npts] = ema_value(m, d, steps)
                npts += 1
                c = 0
    ints[0], ints[1], ints[2], ints[3] = steps, width, npts, c
    flts[0], flts[1], flts[2], flts[3] = bsum, bmin, bmax, m
    flts[5], flts[6], flts[7], flts[8] = tsum, tmin, tmax, last
