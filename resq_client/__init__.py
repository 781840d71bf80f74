"""resq's Python client and its command line (`resq`)."""

from resq_client.client import JobTimeout, ResqClient, ResqClientError, ServiceUnavailable

__all__ = ["JobTimeout", "ResqClient", "ResqClientError", "ServiceUnavailable"]
