"""Helpers the test packages share: free loopback ports, an app under uvicorn in a thread, and the
recording notifier. One copy each, so a fix to how a server starts or stops reaches every test."""
