"""Numbers that more than one layer shows or enforces, one place each (the CLI's help reads them without loading
the modules that use them)."""

# The most simulation workers the stack deploys and documents (1-8); infra.settings uses this one too.
# DRfC's viewer and port ranges stop at 8, and more never helped a single trainer.
MAX_WORKERS = 8

# When the live view (`watch`) and the watchdog's e-mail call a run stalled (session.insight.live.StallRules).
STALL_CHECKPOINT_MINUTES = 20.0  # the trainer saved no checkpoint for this long
STALL_WORKER_MINUTES = 5.0  # a worker made no simulation step for this long
STALL_EVALUATION_LOOP = 20  # worker 1 evaluated this many extra times waiting for one checkpoint

# `deepracer dashboard`'s port on 127.0.0.1 (its unit, the CLI and the docs' tunnels): clear of DRfC's viewer (8100),
# the simulator's web_video_server (8080), Grafana (3000), Jupyter (8888) and MinIO (9000, 9001).
DASHBOARD_PORT = 8200
