"""`make bench`: the real stack driven by concurrent clients, against the model-only
pipeline ceiling and the seed-style baseline measured in the same run."""
