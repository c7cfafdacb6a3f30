"""Python client for the OpenDMP web services (vendor dev kit)."""
