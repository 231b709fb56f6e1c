"""Reading a series from a CSV or NPY file the way people have them: blanks and NA spellings
for missing values, a date/time column as the time index, rows in any time order.

``load_table(path)`` returns a ``Table``: numeric columns as float64 with NaN where a value is
missing, the time index (datetime64[s]) when a column holds one, and each row's file line for
messages. ``fill_missing`` then applies one of the ``MISSING_MODES`` to the columns in use.

Time columns recognised without being named (``data.time`` names one, or ``false`` turns this
off): ISO dates and date-times (``2001-12-29``, ``2001-12``, ``2001-12-29T10:00[:00]``, also with
``/`` or a space), YYYYMMDD integers, Unix seconds (integers in 1973..2103 that increase, in a
column named like a time or with a step of whole minutes), and years in a column named ``year``.
"""
from __future__ import annotations

import csv
import datetime as dt
import os
import re

import numpy as np

# Cells read as "no value" (compared stripped and lower-cased); "." is FRED's, "#n/a" Excel's.
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "-", "--", "?", ".", "#n/a", "nil", "missing"})
MISSING_MODES = ("interpolate", "ffill", "drop", "error")

_ISO = re.compile(r"^(\d{4})[-/](\d{1,2})(?:[-/](\d{1,2})(?:([T ])(\d{1,2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
                  r"(Z|[+-]\d{2}:?\d{2})?)?)?$")
_YYYYMMDD = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:\.0*)?$")
_INT = re.compile(r"^[+-]?\d+(?:\.0*)?$")
_TIME_NAME = re.compile(r"(date|time|stamp|epoch|unix|^ts$|^ds$|^t$)", re.I)


class DataError(ValueError):
    """A data file that cannot be used; the message names the file (and the column or line)."""


def is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING_TOKENS


def _number(cell):
    try:
        return float(cell)
    except ValueError:
        return None


class Table:
    """values (T, F) float64 (NaN: missing), names, lines (T,) file lines; time (T,)
    datetime64[s] or None, time_name, time_kind (iso, yyyymmdd, unix, year, number)."""

    def __init__(self, path, values, names, lines, time=None, time_name=None, time_kind=None, time_style=None):
        self.path, self.values, self.names, self.lines = path, values, names, lines
        self.time, self.time_name, self.time_kind, self.time_style = time, time_name, time_kind, time_style
        self.notes = []                     # one-line remarks for the user (reordering, spacing)
        self.skipped = {}                   # non-numeric columns: name -> (line, first non-number)

    def take(self, rows):
        t = Table(self.path, self.values[rows], self.names, self.lines[rows],
                  None if self.time is None else self.time[rows], self.time_name, self.time_kind, self.time_style)
        t.notes, t.skipped = list(self.notes), self.skipped
        return t


# -- time stamps ----------------------------------------------------------------------------
def _parse_iso(cell):
    m = _ISO.match(cell)
    if not m:
        return None
    y, mo, d, sep, hh, mi, ss, frac, tz = m.groups()
    try:
        t = dt.datetime(int(y), int(mo), int(d or 1), int(hh or 0), int(mi or 0), int(ss or 0))
    except ValueError:
        return None
    if tz and tz != "Z":                 # to UTC: "+02:00" means 2 h ahead of it
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        t -= sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    style = "month" if d is None else "date" if hh is None else ("datetime" + sep + ("s" if ss else "m"))
    return t, style


def _parse_iso_column(cells):
    """(times, "iso", style) or None. NumPy parses plain stamps fast; the rest (time zones,
    unpadded or slashed dates) go through _parse_iso one by one."""
    # the richest style present: date-times over dates over months, seconds over minutes
    rank = lambda st: (st.startswith("datetime"), st.endswith("s"), st != "month")   # noqa: E731
    if not any(("Z" in c or "+" in c or "/" in c or c.count("-") > 2) for c in cells):
        try:
            times = np.array(cells, dtype="datetime64[s]")
        except ValueError:
            times = None
        if times is not None and all(_ISO.match(c) for c in cells):
            lengths = {len(c): c for c in cells}
            return times, "iso", max((_parse_iso(c)[1] for c in lengths.values()), key=rank)
    iso = [_parse_iso(c) for c in cells]
    if not all(iso):
        return None
    return _as_datetime64([t for t, _ in iso]), "iso", max({st for _, st in iso}, key=rank)


def _as_datetime64(times):
    return np.array([np.datetime64(t.replace(microsecond=0), "s") for t in times], dtype="datetime64[s]")


def parse_time(cells, name, explicit=False):
    """(times, kind, style) for non-missing cells, or None when they do not all read as one
    time format; times are datetime64[s] (float for kind "number"). Numeric kinds must increase
    (or decrease) unless the column was named."""
    if not cells:
        return None
    cells = [c.strip() for c in cells]
    if _ISO.match(cells[0]):
        got = _parse_iso_column(cells)
        if got is not None:
            return got
    nums = [_number(c) for c in cells]
    if not all(n is not None and np.isfinite(n) for n in nums):
        return None
    nums = np.array(nums)
    strictly = len(nums) < 2 or np.all(np.diff(nums) > 0) or np.all(np.diff(nums) < 0)
    if not (strictly or explicit):
        return None
    whole = all(_INT.match(c) for c in cells)
    if whole and all(_YYYYMMDD.match(c) for c in cells):
        try:
            times = [dt.datetime(int(c[:4]), int(c[4:6]), int(c[6:8])) for c in cells]
            if all(1000 <= t.year <= 2999 for t in times):
                return _as_datetime64(times), "yyyymmdd", None
        except ValueError:
            pass
    if whole and np.all((nums >= 1e8) & (nums <= 4.2e9)):
        steps = np.abs(np.diff(nums))
        if explicit or _TIME_NAME.search(name) or (len(steps) and np.all(steps % 60 == 0)):
            return nums.astype("int64").astype("datetime64[s]"), "unix", None
    if whole and np.all((nums >= 1000) & (nums <= 2999)) and (explicit or name.strip().lower() in ("year", "yr")):
        return np.array([np.datetime64(f"{int(v):04d}-01-01", "s") for v in nums]), "year", None
    if explicit:                        # any increasing number: an index such as 0, 1, 2 or 1.5, 2.5
        return nums, "number", None
    return None


def format_time(times, kind, style):
    """Time stamps (datetime64[s], or float for kind "number") written the way the file had them."""
    if kind == "number":
        return [f"{v:.10g}" for v in np.asarray(times, float)]
    out = []
    for t in np.asarray(times, "datetime64[s]"):
        d = t.astype(dt.datetime)
        if kind == "yyyymmdd":
            out.append(d.strftime("%Y%m%d"))
        elif kind == "unix":
            out.append(str(int(t.astype("int64"))))
        elif kind == "year":
            out.append(str(d.year))
        elif style == "month":
            out.append(d.strftime("%Y-%m"))
        elif style == "date":
            out.append(d.strftime("%Y-%m-%d"))
        else:
            sep = style[8]
            out.append(d.strftime(f"%Y-%m-%d{sep}%H:%M" + (":%S" if style.endswith("s") else "")))
    return out


def _months(times):
    d = np.asarray(times, "datetime64[M]").astype(int)
    return d                              # months since 1970-01


def time_step(times, kind):
    """The usual step of a time index: ("months", k) when the stamps move by whole calendar
    months on the same day (monthly, quarterly, yearly data), else ("seconds", the most common
    difference). None for fewer than two stamps."""
    if len(times) < 2:
        return None
    if kind == "number":
        diffs = np.diff(np.asarray(times, float))
        vals, counts = np.unique(np.round(diffs, 9), return_counts=True)
        return ("number", float(vals[np.argmax(counts)]))
    t = np.asarray(times, "datetime64[s]")
    days = t.astype("datetime64[D]")
    months = _months(t)
    dom = (days - days.astype("datetime64[M]")).astype(int)
    month_end = (days + 1).astype("datetime64[M]") != days.astype("datetime64[M]")
    same_day = np.all(t == days) and (np.all(dom == dom[0]) or np.all(month_end))
    mdiff = np.diff(months)
    if same_day and len(mdiff) and np.all(mdiff > 0):
        vals, counts = np.unique(mdiff, return_counts=True)
        return ("months", int(vals[np.argmax(counts)]))
    diffs = np.diff(t.astype("int64"))
    vals, counts = np.unique(diffs, return_counts=True)
    return ("seconds", int(vals[np.argmax(counts)]))


def _step_words(step):
    unit, k = step
    if unit == "number":
        return f"{k:g}"
    if unit == "months":
        return {1: "1 month", 3: "3 months (quarterly)", 12: "1 year"}.get(k, f"{k} months")
    for size, word in ((86400 * 7, "week"), (86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if k % size == 0 and k >= size:
            n = k // size
            return f"{n} {word}{'s' if n != 1 else ''}"
    return f"{k} s"


def future_times(times, kind, step, n):
    """The n stamps after the last one, one step apart."""
    unit, k = step
    if unit == "number":
        return np.asarray(times, float)[-1] + k * np.arange(1, n + 1)
    last = np.asarray(times, "datetime64[s]")[-1]
    if unit == "seconds":
        return last + np.arange(1, n + 1) * np.timedelta64(k, "s")
    d = last.astype(dt.datetime)
    month_end = (d + dt.timedelta(days=1)).month != d.month
    out = []
    for i in range(1, n + 1):
        m = d.month - 1 + k * i
        y, m = d.year + m // 12, m % 12 + 1
        last_day = ((dt.date(y + (m == 12), m % 12 + 1, 1)) - dt.timedelta(days=1)).day
        out.append(d.replace(year=y, month=m, day=last_day if month_end else min(d.day, last_day)))
    return _as_datetime64(out)


def spacing_note(table):
    """One line on the time index: its format, step and range, or how it is irregular."""
    t, kind = table.time, table.time_kind
    if t is None or len(t) < 2:
        return None
    step = time_step(t, kind)
    stamps = format_time(t[[0, -1]], kind, table.time_style)
    head = f"time index: column {table.time_name!r} ({kind}), {stamps[0]} .. {stamps[1]}"
    if step[0] == "months":
        bad = np.flatnonzero(np.diff(_months(t)) != step[1])
    elif step[0] == "number":
        bad = np.flatnonzero(np.abs(np.diff(np.asarray(t, float)) - step[1]) > 1e-9 * max(1.0, abs(step[1])))
    else:
        bad = np.flatnonzero(np.diff(t.astype("int64")) != step[1])
    if not len(bad):
        return f"{head}, step {_step_words(step)}"
    gaps = np.diff(np.asarray(t, float) if kind == "number" else t.astype("int64"))
    worst = bad[np.argmax(np.abs(gaps[bad]))]
    return (f"{head}: irregular spacing, {len(bad)} of {len(t) - 1} steps differ from the usual "
            f"{_step_words(step)} (largest gap before line {table.lines[worst + 1]}); "
            f"rows are treated as equally spaced")


# -- reading --------------------------------------------------------------------------------
def _read_npy(path):
    try:
        values = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DataError(f"{path}: not a readable .npy file ({exc})") from None
    if values.dtype.kind not in "fiu" or values.ndim not in (1, 2):
        raise DataError(f"{path}: expected a numeric array of shape (T,) or (T, F), got {values.dtype} {values.shape}")
    values = values.astype(np.float64).reshape(len(values), -1)
    return Table(path, values, [str(i) for i in range(values.shape[1])], np.arange(1, len(values) + 1))


def load_table(path, time=None) -> Table:
    """A CSV (header optional) or .npy file as a Table. ``time``: a column name or index to use
    as the time index, False for none, None to recognise one (see the module notes)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such data file")
    if path.endswith(".npy"):
        if time not in (None, False):
            raise DataError(f"data.time: {path} is an .npy file and has no time column")
        table = _read_npy(path)
        _check_finite(table)
        return table
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [(i + 1, r) for i, r in enumerate(csv.reader(f)) if r and any(c.strip() for c in r)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise DataError(f"{path}: the file is empty")

    first = rows[0][1]
    # A header row has a cell that is neither a number, a missing value nor a time stamp.
    header = None if all(_number(c) is not None or is_missing(c) or _parse_iso(c.strip()) for c in first) \
        else [c.strip() for c in first]
    body = rows[1:] if header else rows
    width = len(first)
    names = header or [str(i) for i in range(width)]
    for line, r in body:
        if len(r) != width:
            raise DataError(f"{path}: line {line} has {len(r)} fields, expected {width}")
    lines = np.array([line for line, _ in body], dtype=np.int64)
    cols = [[r[j] for _, r in body] for j in range(width)]

    # The time column: the one named, or the first that reads as time stamps.
    time_col, parsed = None, None
    if time not in (None, False):
        time_col = _resolve(time, names, "data.time", path)
        parsed = _parse_time_column(cols[time_col], names[time_col], lines, path, explicit=True)
    elif time is None:
        for j in range(width):
            parsed = _parse_time_column(cols[j], names[j], lines, path, explicit=False)
            if parsed is not None:
                time_col = j
                break

    # Numeric columns: every cell a number or a missing value, at least one number.
    numeric, skipped, columns = [], {}, []
    for j in range(width):
        try:                                      # the common case: every cell a number
            col = np.array(cols[j], dtype=np.float64)
        except ValueError:
            bad = next((i for i, c in enumerate(cols[j]) if not is_missing(c) and _number(c) is None), None)
            if bad is not None or all(is_missing(c) for c in cols[j]):
                skipped[names[j]] = (int(lines[bad]), cols[j][bad].strip()) if bad is not None else None
                continue
            col = np.array([np.nan if is_missing(c) else float(c) for c in cols[j]], dtype=np.float64)
        if np.isnan(col).all():                   # "nan" in every row: no values, like all blanks
            skipped[names[j]] = None
            continue
        numeric.append(j)
        columns.append(col)
    values = np.stack(columns, axis=1) if columns else np.empty((len(body), 0))
    num_names = [names[j] for j in numeric]
    if time_col is not None and time_col not in numeric:     # ISO stamps as a feature: days since 1970
        values = np.concatenate([values, (parsed[0].astype("int64") / 86400.0)[:, None]], axis=1)
        num_names.append(names[time_col])
    if len(num_names) - (time_col is not None) < 1:
        raise DataError(f"{path}: no numeric columns" + (f" besides the time column {names[time_col]!r}"
                                                          if time_col is not None else ""))
    table = Table(path, values, num_names, lines)
    table.skipped = {k: v for k, v in skipped.items() if time_col is None or k != names[time_col]}
    if time_col is not None:
        table.time, table.time_kind, table.time_style = parsed
        table.time_name = names[time_col]
        table = _in_time_order(table)
    _check_finite(table)
    return table


def _parse_time_column(cells, name, lines, path, explicit):
    present = [i for i, c in enumerate(cells) if not is_missing(c)]
    got = parse_time([cells[i] for i in present], name, explicit)
    if got is None:
        if explicit:
            raise DataError(f"data.time: column {name!r} of {path} does not read as time stamps "
                            f"(ISO dates, YYYYMMDD, Unix seconds, years or increasing numbers)")
        return None
    if len(present) < len(cells):
        bad = [int(lines[i]) for i in range(len(cells)) if is_missing(cells[i])]
        raise DataError(f"{path}: the time column {name!r} has {len(bad)} blank stamp(s), at line(s) "
                        f"{_first(bad)}; fill them in or set data.time = false")
    return got


def _in_time_order(table):
    t = table.time.astype("int64") if table.time_kind != "number" else table.time
    if len(t) < 2 or np.all(np.diff(t) >= 0):
        return table
    if np.all(np.diff(t) <= 0):
        out = table.take(np.arange(len(t))[::-1])
        out.notes.append(f"rows are in reverse time order in {table.path}: reversed")
        return out
    out = table.take(np.argsort(t, kind="stable"))
    out.notes.append(f"rows of {table.path} are not in time order: sorted by {table.time_name!r}")
    return out


def _check_finite(table):
    bad = np.isinf(table.values)
    if bad.any():
        j = int(np.flatnonzero(bad.any(axis=0))[0])
        raise DataError(f"{table.path}: column {table.names[j]!r} has infinite values, at line(s) "
                        f"{_first(table.lines[bad[:, j]].tolist())}")


def _first(items, k=5):
    items = [str(i) for i in items]
    return ", ".join(items[:k]) + (f" ... ({len(items)} in all)" if len(items) > k else "")


def _resolve(spec, names, field, path):
    if isinstance(spec, str):
        if spec in names:
            return names.index(spec)
        raise DataError(f"{field}: no column {spec!r} in {path} ({', '.join(names)})")
    if not -len(names) <= spec < len(names):
        raise DataError(f"{field}: column index {spec} is out of range for {len(names)} columns in {path}")
    return spec % len(names)


# -- missing values -------------------------------------------------------------------------
def fill_missing(table, columns, mode):
    """Fills (or drops the rows of) the missing values of ``columns`` (indices into
    table.names) in place of a copy. Returns (table, message or None). interpolate: linear in
    time (in row order without a time index), the first and last stretches take the nearest
    value; ffill: the last value seen (a leading stretch takes the first); drop: the rows go;
    error: a DataError naming the column and its first bad lines."""
    if mode not in MISSING_MODES:
        raise ValueError(f"mode must be one of {MISSING_MODES}, got {mode!r}")
    sub = table.values[:, columns]
    miss = np.isnan(sub)
    if not miss.any():
        return table, None
    counts = miss.sum(axis=0)
    used = [(table.names[columns[j]], int(c)) for j, c in enumerate(counts) if c]
    for j, c in enumerate(counts):
        if c == len(sub):
            raise DataError(f"{table.path}: column {table.names[columns[j]]!r} has no values (all {c} blank or NA)")
    if mode == "error":
        j = int(np.flatnonzero(counts)[0])
        raise DataError(f"{table.path}: column {table.names[columns[j]]!r} has {int(counts[j])} missing value(s) "
                        f"(data.missing = \"error\"), at line(s) {_first(table.lines[miss[:, j]].tolist())}")
    total = (f"{used[0][1]} of {len(sub)} values in {used[0][0]!r}" if len(used) == 1 else
             f"{int(miss.sum())} of {sub.size} values ({', '.join(f'{c} in {n!r}' for n, c in used)})")
    if mode == "drop":
        keep = ~miss.any(axis=1)
        return table.take(np.flatnonzero(keep)), f"{total}: dropped {int((~keep).sum())} row(s)"
    out = table.take(np.arange(len(sub)))
    values = out.values.copy()
    if table.time is not None:
        x = np.asarray(table.time, float) if table.time_kind == "number" else table.time.astype("int64").astype(float)
    else:
        x = np.arange(len(sub), dtype=float)
    for j, col in enumerate(columns):
        m = miss[:, j]
        if not m.any():
            continue
        v = values[:, col]
        if mode == "interpolate":
            v[m] = np.interp(x[m], x[~m], v[~m])
        else:                                          # ffill
            idx = np.where(~m, np.arange(len(v)), 0)
            np.maximum.accumulate(idx, out=idx)
            first = np.flatnonzero(~m)[0]
            idx[:first] = first
            v[:] = v[idx]
    out.values = values
    how = "linearly interpolated" if mode == "interpolate" else "filled forward"
    return out, f"{total}: {how}"
