"""Every metric, and the /metrics exposition of them."""
