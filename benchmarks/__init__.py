"""Benchmarks of mlops_guard_events against its peers; run them with `python -m benchmarks`.

Every figure is measured side by side with a peer in the same run, because the machines these
run on are shared and noisy. The benchmarks, each in `run(quick=...)` of its module:

1. `success_path`: the cost per call when the guard returns normally.
2. `failure_path`: the cost a failing guard pays on its own thread to report, and the
   explicit call, against the official `datarobot` client.
3. `delivery`: events per second drained to a loopback receiver, against the official client.
4. `import_cost`: time and memory of the import, against `wrapt` and `datarobot`.
5. `storm`: memory and HTTP requests during a million failing calls of one guard.

The peers come with the `bench` extra (`pip install -e '.[bench]'`); the library never imports
them. Every server runs on 127.0.0.1.
"""
