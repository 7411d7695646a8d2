"""Side-by-side measurements of the guard's per-request cost (issue 6).

Not tests: nothing here asserts a timing. ``scripts/bench`` runs
:mod:`benchmarks.run`, which writes ``benchmarks/RESULTS.md`` and
``benchmarks/results.png``.

- :mod:`benchmarks.apps`: the four stacks (bare app, OIDCMiddleware with
  MemoryStore or RedisStore, Starlette ``SessionMiddleware`` peer), built
  in-process or by uvicorn from environment variables;
- :mod:`benchmarks.support`: the development provider, a throwaway
  redis-server, logging in once to get a cookie;
- :mod:`benchmarks.inprocess`: direct ASGI calls (per-request cost, login
  callback, ID-token validation, scaling with rules and sessions, and the
  per-step micro-benchmarks);
- :mod:`benchmarks.server`: uvicorn (uvloop, httptools) under wrk;
- :mod:`benchmarks.report`: the Markdown table and the plot.
"""
