"""The trio runtime: sockets, HTTP and websocket serving, Postgres I/O, processes, clocks, randomness."""
