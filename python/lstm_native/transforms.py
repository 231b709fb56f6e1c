"""Learning changes instead of levels, and the baselines a forecast must beat.

A network fed levels scaled on the training years cannot follow a trend into later years: the
test inputs leave the range it saw. ``diff``, ``log_diff`` and ``pct_change`` turn the target
into changes, which stay in range, and ``invert`` turns forecast changes back into levels by
accumulating them from the last observed level (so a multi-step forecast is a path, not a
sequence of independent one-step guesses).

``choose`` is the rule behind ``data.transform = "auto"``, applied to the training part only:

1. an augmented Dickey-Fuller test (constant, no trend; lags chosen by BIC up to
   12 (n/100)^(1/4)) on the levels. A unit root rejected at 5% (MacKinnon's finite-sample
   critical value, -2.86 for long series) means the level is stationary: "none".
2. Otherwise the model learns changes: "log_diff" when every training value is positive and
   the largest is at least twice the smallest (growth that compounds), else "diff".
"""
from __future__ import annotations

import numpy as np

TRANSFORMS = ("none", "diff", "log_diff", "pct_change")


def check_domain(levels, kind, where):
    """log_diff needs positive levels, pct_change non-zero ones; a ValueError says where not."""
    levels = np.asarray(levels, float)
    bad = (levels <= 0) if kind == "log_diff" else (levels == 0) if kind == "pct_change" else None
    if bad is not None and bad.any():
        need = "positive" if kind == "log_diff" else "non-zero"
        raise ValueError(f"data.transform = {kind!r} needs {need} values of the target, {where} has "
                         f"{int(bad.sum())} that are not (use \"diff\")")


def forward(levels, kind):
    """Changes z_t from levels x (T,): z_0 is NaN (nothing before it) unless kind is "none".
    diff x_t - x_{t-1}; log_diff log x_t - log x_{t-1}; pct_change x_t / x_{t-1} - 1."""
    x = np.asarray(levels, float)
    if kind == "none":
        return x.copy()
    z = np.full_like(x, np.nan)
    if kind == "diff":
        z[1:] = np.diff(x)
    elif kind == "log_diff":
        z[1:] = np.diff(np.log(x))
    elif kind == "pct_change":
        z[1:] = x[1:] / x[:-1] - 1.0
    else:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {kind!r}")
    return z


def invert(last_level, changes, kind):
    """Levels from forecast changes (N, H) and each row's last observed level (N,): the h-th
    step accumulates changes 1..h (cumulative sum, or product of growth factors)."""
    z = np.asarray(changes, float)
    last = np.asarray(last_level, float).reshape(-1, *([1] * (z.ndim - 1)))
    if kind == "none":
        return z.copy()
    if kind == "diff":
        return last + np.cumsum(z, axis=1)
    if kind == "log_diff":
        return last * np.exp(np.cumsum(z, axis=1))
    if kind == "pct_change":
        return last * np.cumprod(1.0 + z, axis=1)
    raise ValueError(f"transform must be one of {TRANSFORMS}, got {kind!r}")


# -- the "auto" rule ------------------------------------------------------------------------
def adf_tstat(x, max_lag=None):
    """(t statistic, lags used) of the augmented Dickey-Fuller regression with a constant:
    dx_t = a + g x_{t-1} + sum_i b_i dx_{t-i} + e_t; lags by BIC on a common sample."""
    x = np.asarray(x, float)
    n = len(x)
    if max_lag is None:
        max_lag = int(12 * (n / 100) ** 0.25)
    max_lag = max(0, min(max_lag, n // 4))
    dx = np.diff(x)
    rows = len(dx) - max_lag
    if rows < 8:
        return np.nan, 0
    y = dx[max_lag:]

    def design(p):
        cols = [np.ones(rows), x[max_lag:-1]] + [dx[max_lag - i:len(dx) - i] for i in range(1, p + 1)]
        return np.column_stack(cols)

    best = None
    for p in range(max_lag + 1):
        A = design(p)
        coef, *_ = np.linalg.lstsq(A, y, rcond=None)
        rss = float(np.sum((y - A @ coef) ** 2))
        bic = rows * np.log(max(rss, 1e-300) / rows) + A.shape[1] * np.log(rows)
        if best is None or bic < best[0]:
            best = (bic, p)
    p = best[1]
    # refit on every row the chosen lag allows
    y = dx[p:]
    A = np.column_stack([np.ones(len(y)), x[p:-1]] + [dx[p - i:len(dx) - i] for i in range(1, p + 1)])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    dof = len(y) - A.shape[1]
    if dof < 1:
        return np.nan, p
    sigma2 = float(resid @ resid) / dof
    try:
        cov = sigma2 * np.linalg.inv(A.T @ A)
    except np.linalg.LinAlgError:
        return np.nan, p
    se = np.sqrt(max(cov[1, 1], 0.0))
    return (float(coef[1] / se) if se > 0 else (-np.inf if coef[1] < 0 else np.inf)), p


def adf_critical_5pct(n):
    """MacKinnon (2010), constant, no trend: the 5% critical value for n observations."""
    return -2.8621 - 2.738 / n - 8.36 / n ** 2


def choose(levels):
    """(transform, reason) for data.transform = "auto" from the training part's target levels."""
    x = np.asarray(levels, float)
    if len(x) < 20 or np.ptp(x) == 0:
        return "none", "too short or constant to test; levels"
    t, p = adf_tstat(x)
    crit = adf_critical_5pct(len(x))
    if np.isfinite(t) and t < crit:
        return "none", f"ADF t = {t:.2f} < {crit:.2f} (lags {p}): stationary, the model learns levels"
    why = f"ADF t = {t:.2f} >= {crit:.2f} (lags {p}): a unit root or trend, the model learns changes"
    if x.min() > 0 and x.max() >= 2 * x.min():
        return "log_diff", why + " in logs (positive, max >= 2 x min)"
    return "diff", why


# -- seasons and baselines ------------------------------------------------------------------
def detect_season(series, max_lag=None, natural=None):
    """The period of a seasonal pattern in ``series`` from its autocorrelation, or 0 (train
    passes the first differences of the training part, which show a season with or without a
    trend). Only peaks after the first negative autocorrelation at lag >= 2 count (persistence
    alone is no season; differencing alone makes lag 1 negative); the highest must reach
    max(0.2, 3/sqrt(n)), and the shortest peak within 10% of it is the period (not a multiple
    of it). ``natural``, the calendar's period for the time step (52 for weekly data, 12
    monthly, ...), is taken instead when the peak lies within 10% of it (the estimator's taper
    pulls peaks early on short series)."""
    z = np.asarray(series, float)
    z = z[np.isfinite(z)]
    n = len(z)
    max_lag = min(n // 3 if max_lag is None else max_lag, n // 2)
    if max_lag < 3:
        return 0
    z = z - z.mean()
    denom = float(z @ z)
    if denom == 0:
        return 0
    # the usual (biased) estimator: the unbiased one finds seasons in random walks at long lags
    acf = np.array([float(z[:n - k] @ z[k:]) / denom for k in range(max_lag + 2)])
    negative = np.flatnonzero(acf[2:] < 0) + 2
    if not len(negative):
        return 0
    peaks = [k for k in range(negative[0], max_lag + 1) if acf[k] > acf[k - 1] and acf[k] >= acf[k + 1]]
    if not peaks:
        return 0
    top = max(acf[k] for k in peaks)
    if top < max(0.2, 3 / np.sqrt(n)):
        return 0
    season = next(k for k in peaks if acf[k] >= 0.9 * top)
    if natural and abs(season - natural) <= max(1, 0.1 * natural):
        return int(natural)
    return int(season)


NATURAL_SEASONS = {("seconds", 3600): 24, ("seconds", 86400): 7, ("seconds", 7 * 86400): 52,
                   ("months", 1): 12, ("months", 3): 4}


def naive(levels, origins, horizon):
    """The last value at each origin, repeated for every step: (N, horizon)."""
    x = np.asarray(levels, float)
    return np.repeat(x[np.asarray(origins)][:, None], horizon, axis=1)


def seasonal_naive(levels, origins, horizon, season):
    """Step h after origin o forecast as the value one season earlier, x[o + h - s * ceil(h/s)]
    (the latest value at the same phase of the season that is already observed)."""
    x = np.asarray(levels, float)
    h = np.arange(1, horizon + 1)
    back = season * np.ceil(h / season).astype(int)
    idx = np.asarray(origins)[:, None] + h[None, :] - back[None, :]
    if idx.min() < 0:
        raise ValueError(f"season {season} reaches before the first row for origin {int(np.asarray(origins).min())}")
    return x[idx]
