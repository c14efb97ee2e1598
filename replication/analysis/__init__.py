"""From results tables to the paper's numbers and figures. Reads results; runs no network
(except table1, which reads a model's weights).

stats        mean ± std over repeats, rank-sum tests, linear fits
claims       the claim registry: every quantitative claim of the paper, checked
claims_vgg   the claims of Figure 5's caption, about VGG-16
experiments  the paper's figures as data: perturbation, metric, levels, repeats
figures      drawing a figure from a results table
reports      the claims table as text/Markdown, the report beside each figure
table1       the paper's Table 1: statistics of every weight array
profile      beyond the paper: the level at which each layer's accuracy halves, across networks
recovery     recovery after damage: recovered fractions, images to half, the report and the curves
"""

# Figure 5's caption claims register themselves into the claim registry (claims.py), which
# imports nothing back; importing them here registers them before any claims table is built.
from replication.analysis import claims_vgg  # noqa: E402,F401
