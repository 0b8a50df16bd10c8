"""Datasets by name (registry.py) and what they are read from: formats (idx.py, cifar.py,
teacher.py, digits_split.py), the checks that a file is the official one (files.py), the cache
and safe downloads (download.py), and `Dataset` itself (dataset.py)."""
