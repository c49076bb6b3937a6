"""The job workflow: validate -> train -> resolve_lock -> relock -> evaluate -> gate -> publish | reject."""
