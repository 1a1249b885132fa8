"""Load tests and the service benchmark: the Locust users, the two comparison apps, and the runner."""
