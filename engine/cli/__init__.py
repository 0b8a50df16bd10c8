"""`creditlab` and its commands: main.py dispatches, one module per concern beside it."""
