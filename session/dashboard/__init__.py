"""`deepracer dashboard`: the run in a browser page, served on 127.0.0.1 only (layer 10, below the CLI).

The page polls a JSON API built from the readers `watch` and `status` use (session.insight), proxies each worker's
camera stream, and offers the CLI's own controls; access needs the host's token, every POST a CSRF token."""
