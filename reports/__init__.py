"""Figures and tables of the paper's experiments, drawn from results/ (not part of the engine)."""
