#!/usr/bin/env python3
"""Writes the compare fixtures (runs.csv of four small results folders) and
prints the statistics tests/compare.rs expects, computed with scipy
(ttest_ind(equal_var=False), mannwhitneyu(method="auto"), t.ppf), statsmodels
(ttost_ind(usevar="unequal") on the logarithms, the equivalence test) and
Holm's correction written out below. Rerun after changing a value:

    python3 -m venv /tmp/v && /tmp/v/bin/pip install scipy statsmodels
    /tmp/v/bin/python tests/data/compare/fixtures.py
"""
import os
import math

import numpy as np
import scipy
import statsmodels
from scipy import stats
from statsmodels.stats.weightstats import ttost_ind

HERE = os.path.dirname(os.path.abspath(__file__))

DATA = {
    "base": {
        "setup_A": [2310.5, 2298.1, 2355.0, 2280.4, 2402.7, 2290.0, 2321.9, 2275.3, 2450.8, 2301.2, 2288.8, 2333.3],
        "teardown_A": [741.9, 795.3, 653.2, 787.5, 760.0, 748.1, 770.2, 735.5, 812.4, 729.9, 760.0, 744.6],
    },
    "same": {
        "setup_A": [2305.2, 2340.1, 2279.9, 2312.0, 2296.4, 2388.5, 2284.6, 2327.7, 2301.2, 2318.3, 2294.0, 2420.9],
        "teardown_A": [752.3, 738.8, 779.1, 766.4, 744.6, 801.2, 725.0, 758.7, 790.9, 748.1, 731.6, 769.9],
    },
    "slower": {
        "setup_A": [3010.0, 2985.4, 3102.6, 2950.1, 3120.7, 2999.9, 3044.2, 2962.8, 3300.5, 3011.1, 2977.3, 3060.6],
        "teardown_A": [752.3, 738.8, 779.1, 766.4, 744.6, 801.2, 725.0, 758.7, 790.9, 748.1, 731.6, 769.9],
    },
    # The same runs 4% slower (and a little reshuffled): significant, but
    # inside a 10% margin.
    "shifted": {
        "setup_A": [round(v * 1.04, 1) for v in [2305.2, 2340.1, 2279.9, 2312.0, 2296.4, 2388.5, 2284.6, 2327.7, 2301.2, 2318.3, 2294.0, 2420.9]],
        "teardown_A": [752.3, 738.8, 779.1, 766.4, 744.6, 801.2, 725.0, 758.7, 790.9, 748.1, 731.6, 769.9],
    },
    # Five runs without ties: the exact distribution of U.
    "small-a": {"setup_A": [10.1, 12.3, 11.7, 13.9, 10.8]},
    "small-b": {"setup_A": [14.2, 12.9, 15.5, 13.1, 16.0]},
}


def write(name, cols):
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    keys = sorted(cols)
    n = len(cols[keys[0]])
    with open(os.path.join(d, "runs.csv"), "w") as f:
        f.write("variant,run," + ",".join(k + "_us" for k in keys) + "\n")
        for i in range(n):
            f.write("auth,%d,%s\n" % (i + 1, ",".join("%.3f" % cols[k][i] for k in keys)))


def holm(ps):
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    out, run, m = [0.0] * len(ps), 0.0, len(ps)
    for rank, i in enumerate(order):
        run = max(run, min(1.0, (m - rank) * ps[i]))
        out[i] = run
    return out


def tost(x, y, margin_pct, alpha):
    """B/A inside [1/(1+m), 1+m]: statsmodels' TOST on the logs, and the
    (1 - 2 alpha) CI of the ratio from its degrees of freedom."""
    lx, ly = np.log(x), np.log(y)
    bound = math.log(1 + margin_pct / 100)
    p, (t1, p1, df1), (t2, p2, df2) = ttost_ind(ly, lx, -bound, bound, usevar="unequal")
    d = ly.mean() - lx.mean()
    se = (np.var(lx, ddof=1) / len(lx) + np.var(ly, ddof=1) / len(ly)) ** 0.5
    half = stats.t.ppf(1 - alpha, df1) * se
    return "tost(%g%%) p=%.10g t_lower=%.10g t_upper=%.10g df=%.10g ratio=%.10g ci=(%.10g, %.10g)" % (
        margin_pct, p, t1, t2, df1, math.exp(d), math.exp(d - half), math.exp(d + half))


def compare(a, b, margin_pct=10, alpha=0.05):
    print("== %s vs %s (scipy %s, statsmodels %s)" % (a, b, scipy.__version__, statsmodels.__version__))
    keys = sorted(set(DATA[a]) & set(DATA[b]))
    pw, pm = [], []
    for k in keys:
        x, y = DATA[a][k], DATA[b][k]
        w = stats.ttest_ind(y, x, equal_var=False)
        u = stats.mannwhitneyu(y, x, alternative="two-sided", method="auto")
        va, vb = stats.tvar(x) / len(x), stats.tvar(y) / len(y)
        df = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))
        half = stats.t.ppf(0.975, df) * (va + vb) ** 0.5
        d = sum(y) / len(y) - sum(x) / len(x)
        print("%s: welch t=%.10g df=%.10g p=%.10g diff_ci95=(%.10g, %.10g)" % (k, w.statistic, df, w.pvalue, d - half, d + half))
        print("%s: mwu U_b=%.10g p=%.10g" % (k, u.statistic, u.pvalue))
        print("%s: %s" % (k, tost(x, y, margin_pct, alpha)))
        pw.append(w.pvalue)
        pm.append(u.pvalue)
    print("holm welch", ["%.10g" % p for p in holm(pw)])
    print("holm mwu", ["%.10g" % p for p in holm(pm)])


for name, cols in DATA.items():
    write(name, cols)
compare("base", "same")
compare("base", "slower")
compare("base", "shifted")
compare("base", "shifted", margin_pct=3)
compare("small-a", "small-b")
compare("small-a", "small-b", alpha=0.01)
