"""The benchmark suite: `python -m bench --scale S|M|L`. See bench/README.md."""
