"""The job data in Redis: every key, the records, the scripts that change them and
the classes that run those scripts."""
