"""The names inside a model prefix that several layers share (FORMATS.md: the S3 layout of a model).

`<prefix>/model/` holds the checkpoints (`<n>_Step-<step>.ckpt.index/.meta/.data-00000-of-00001`) and two pointer
files naming the ones the simulator starts from; the trainer and the workers leave hand-off markers there too.
"""

CHECKPOINTS_JSON = "deepracer_checkpoints.json"  # {"best_checkpoint": {...}, "last_checkpoint": {...}}
COACH_CHECKPOINT = ".coach_checkpoint"  # rl_coach's name of the newest checkpoint
# The trainer/worker hand-off markers in model/: they speak for one live run, so copies of a model leave them out.
HANDOFF_MARKERS = (".lock", ".ready", ".finished")
CHECKPOINT_SUFFIXES = (".ckpt.index", ".ckpt.meta", ".ckpt.data-00000-of-00001")  # one checkpoint's three files
