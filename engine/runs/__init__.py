"""Run folders: their layout (layout.py), the writer (writer.py) and the readers (reader.py)."""
