"""Pure planning: spec + observed objects in, desired objects + status out. No I/O."""
