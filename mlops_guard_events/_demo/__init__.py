"""The `demo` command: a small moderation pipeline that reports events to a local receiver.

The pipeline, its guards, its custom-metric calls and its data are written for this demo only;
none of it is part of the library's API.
"""

from __future__ import annotations

from .run import run_demo

__all__ = ["run_demo"]
