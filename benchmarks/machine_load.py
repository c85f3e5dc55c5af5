"""What else ran: the 1-minute load average, read during a benchmark and said in its
footnote in place of a fixed "machine shared with other jobs"."""

import os


def read():
    """The 1-minute load average now (``os.getloadavg()[0]``)."""
    return float(os.getloadavg()[0])


def describe(readings, own=2.0):
    """One sentence on the load ``readings`` taken during a run, e.g. ``1-minute load
    average 1.9-7.8 (mean 4.2, 12 readings) on 2 CPU cores; the benchmark itself adds
    about 2, more means other jobs shared the cores: times are indicative.``

    Args:
        readings: load averages read during the run (:func:`read`).
        own: about what the benchmark adds by itself (one process, its threads).
    """
    if not readings:
        return "Load average not measured."
    low, high, mean, cores = min(readings), max(readings), sum(readings) / len(readings), os.cpu_count()
    shared = high > own + 0.5 * cores
    return (f"1-minute load average {low:.1f}-{high:.1f} (mean {mean:.1f}, {len(readings)} readings) on {cores} CPU "
            f"cores; the benchmark itself adds about {own:.0f}, " +
            ("more means other jobs shared the cores: times are indicative." if shared else "so the machine was otherwise about idle."))
