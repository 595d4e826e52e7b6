"""Analytics: pure pandas / scikit-learn computations. Knows nothing of Dash or Flask."""
