"""`facezoo embed-dataset`: batch embedding on Ray Data, on this machine or a cluster.

    from facezoo.batch import EmbedJob, run_embed_job
    summary = run_embed_job(EmbedJob("faces/", "arcface", "faces.parquet", actors=2))

Needs the `facezoo[ray]` extra; Ray is imported only when a job runs.
"""

from facezoo.batch.job import EmbedJob, JobSummary, run_embed_job

__all__ = ["EmbedJob", "JobSummary", "run_embed_job"]
