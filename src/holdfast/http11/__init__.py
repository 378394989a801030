"""holdfast's HTTP/1.1 wire code (internal, not a public API).

`grammar` is the strict message syntax every reader shares; `response` reads the answers the
Runtime API client and the proxy get, through `client_socket` (their sockets: connect, and a
reader that waits in the socket while the loop is quiet); `server` is the small HTTP/1.1 server
of the emulator (front and Runtime API) and of `holdfast dev`.
"""
