from tests.observability.promql import metric_names


def test_metric_names_are_found_and_functions_labels_and_keywords_are_not():
    expr = ('histogram_quantile(0.95, sum by (le) (rate(resq_http_request_duration_seconds_bucket'
            '{route=~"/jobs.*", wait="no"}[$__rate_interval]))) > 0.5 and on() '
            '(sum(up{job="resq-worker"}) or vector(0)) == 0')
    assert metric_names(expr) == {"resq_http_request_duration_seconds_bucket", "up"}
    ratio = "process_resident_memory_bytes / on(job, instance) resq_memory_limit_bytes"
    assert metric_names(ratio) \
        == {"process_resident_memory_bytes", "resq_memory_limit_bytes"}
