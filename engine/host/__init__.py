"""A run in its own process, driven by the one run loop (engine/control.py): what the dashboard
starts and talks to. It imports nothing of the page."""
