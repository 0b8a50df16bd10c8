"""creditlab's live dashboard (Panel). `panel serve app/` serves app/main.py.

Only presentation lives here: runs come from engine.trainer, metrics from engine.metrics.
"""
