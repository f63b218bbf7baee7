"""The classic initialization papers, re-run at CPU scale: one module per paper.

Each module has ``run(quick: bool) -> Reproduction``: it trains or probes small networks on
generated data or scikit-learn's bundled digits, and returns the figure's data (panels of
series), the numbers it measured and a pass/fail check against the paper's claim.
:mod:`initlab.papers.catalog` lists them without importing torch.
"""
