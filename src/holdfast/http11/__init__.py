"""holdfast's HTTP/1.1 wire code (internal, not a public API).

`grammar` is the strict message syntax every reader shares; `response` reads the answers the
Runtime API client and the proxy get; `server` is the small HTTP/1.1 server of the emulator
(front and Runtime API) and of `holdfast dev`.
"""
