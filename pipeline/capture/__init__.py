"""The per-capture stage: one capture in, its Parquet packets, summaries and counts out.

It runs once per capture (content), in the pass that decodes it, in this process, a process
pool (`--jobs`) or on Ray (`--ray`); nothing in it touches the analysis database.
"""
