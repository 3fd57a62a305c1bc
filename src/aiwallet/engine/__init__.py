"""The loopback engine: HTTP server, policy pipeline, streaming meter, wallet and admin APIs."""
