"""The benchmark code still runs (issue 6). Nothing here asserts a timing:
a handful of in-process requests per stack, and the report rendered from them."""

from __future__ import annotations

from benchmarks import apps, inprocess, report, run, server, support

WRK_OUTPUT = """\
Running 5s test @ http://127.0.0.1:8000/api/data
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   702.10us  120.33us   3.10ms   91.20%
    Req/Sec    45.61k     1.02k   47.00k    80.00%
  Latency Distribution
     50%  690.00us
     75%  740.00us
     90%  800.00us
     99%    1.30ms
  226950 requests in 5.00s, 33.11MB read
Requests/sec:  45390.12
Transfer/sec:      6.62MB
"""


async def test_in_process_measurement_runs() -> None:
    provider = inprocess.in_process_provider()
    oidc = await inprocess.oidc_stack("oidc-memory", "OIDCMiddleware, MemoryStore", provider)
    try:
        timings = await inprocess.compare(
            {
                "bare": (apps.echo_app, inprocess.request_headers(None)),
                "peer": (
                    apps.peer_app(apps.echo_app, support.PEER_SECRET),
                    inprocess.request_headers(await support.peer_cookie(provider)),
                ),
                "oidc-memory": (oidc.app, oidc.headers),
            },
            rounds=2,
            iterations=5,
        )
    finally:
        await oidc.aclose()
    for key, timing in timings.items():
        assert timing.status == 200, key
        assert timing.calls == 10
        assert timing.cpu_ns > 0 and timing.wall_ns > 0 and timing.wall_best_ns > 0

    results = report.Results(machine={"cores": "2"}, versions={}, labels={})
    results.inprocess = timings
    results.server = {"bare": server.parse_wrk(WRK_OUTPUT)}
    results.server_rounds = {"bare": [results.server["bare"]]}
    text = report.markdown(results)
    assert "(a) One authenticated request" in text and "45,390" in text


def test_wrk_output_is_read() -> None:
    assert callable(run.main)
    result = server.parse_wrk(WRK_OUTPUT)
    assert result.requests_per_s == 45390.12
    assert abs(result.p50_ms - 0.69) < 1e-9 and abs(result.p99_ms - 1.3) < 1e-9
    assert result.requests == 226950 and result.non_2xx == 0
