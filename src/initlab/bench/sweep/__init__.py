"""Sweeps: many small training runs (scheme x scale x depth x width x activation x lr x
optimizer x data x seed), batched by architecture, on this process or on Ray, stored as rows.

``spec`` (what to run), ``engine`` (one chunk as a vmapped or fused ensemble), ``backends``
(local, Ray), ``store`` (``results.csv``/``.parquet``, resumable), ``run`` (:func:`sweep`).
"""
