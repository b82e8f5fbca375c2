"""The pure (sans-I/O) protocol layer: no sockets, threads or clock reads; `now` is passed in."""
