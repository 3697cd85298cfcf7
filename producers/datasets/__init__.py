"""Datasets for researchers: a simulation run written as PaySim, AMLSim or Parquet tables, every
payment request carrying its ground-truth label (what the simulation meant it to do)."""
