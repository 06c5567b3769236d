"""replica.datasets: storage over any URL, the sample schema, WebDataset shards, ingestion, shipped corpora and the synthetic world.

(Shadows Hugging Face's package of the same name; replica does not use that one.)
"""
