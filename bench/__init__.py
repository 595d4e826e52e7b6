"""The benchmark suite (issue 6): `python -m bench --scale S|M|L`. See bench/README.md."""
